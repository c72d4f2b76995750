"""A small Django project for the tests of hailwhale.contrib.django: a shop with customers and orders."""
