from django.db import models

from hailwhale.contrib.django.models import WhaleModel


class Customer(WhaleModel, models.Model):
    name = models.CharField(max_length=100)


class Order(WhaleModel, models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE)
