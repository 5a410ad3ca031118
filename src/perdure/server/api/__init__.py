"""HTTP APIs of the server: ingress (calls, sends, attach) and admin (deployments, services)."""
