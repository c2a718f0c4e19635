"""Places: city › district › street › community › grid › building › unit › household, and facilities."""
