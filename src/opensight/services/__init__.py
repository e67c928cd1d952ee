"""Services hold the logic between the HTTP routers (above) and jobs/analyzers/storage (below)."""
