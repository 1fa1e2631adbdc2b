"""SQLAlchemy models of the areas not yet in a package of their own."""
