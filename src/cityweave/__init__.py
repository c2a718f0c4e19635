"""CityWeave: homes, communities and the city in one system."""

__version__ = "0.1.0"
