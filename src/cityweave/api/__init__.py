"""The HTTP edge: FastAPI routers over the domain services. No business rules live here."""
