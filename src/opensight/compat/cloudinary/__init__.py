"""Cloudinary's Analyze API (``/v2/analysis/{cloud_name}``) on top of the native services.

``requests`` parses and validates the foreign bodies, ``analyzers`` maps each of the 15
Cloudinary analyzers onto a native feature, ``render`` turns native results into Cloudinary's
``analysis`` objects, ``errors`` renders the error object, ``auth`` checks HTTP Basic
credentials, ``limits`` reports the key's quota, ``webhook`` renders async notifications.
"""
