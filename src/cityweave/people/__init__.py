"""People: persons, their households and the care tags that some roles may see."""
