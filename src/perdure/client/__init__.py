"""The ingress client (Client, AsyncClient). Not built yet (issue: "Ingress client")."""
