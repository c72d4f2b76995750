from django.http import HttpResponse
from django.template import Context, Template

from tests.django_project.models import Customer, Order

PAGE = Template(
    "{% load hailwhale %}<h1>Order {{ order.pk }}</h1>"
    "{% hailwhale_graph order 'country' 'revenue' period='seven' %}"
    "{% hailwhale_pixel 'shop' metrics=pixel_metrics %}"
    '{% hailwhale_beacon order \'{"page": "order"}\' %}'
)


def order(request, pk: int):
    """Counts a sale of the order (and of its customer), then shows its graph."""
    sale = Order(id=pk, customer=Customer(id=7, name="Ann"))
    sale.whale.count_now({"country": "US"}, {"revenue": 5})
    sale.count_now_related("customer", metrics={"revenue": 5})
    return HttpResponse(PAGE.render(Context({"order": sale, "pixel_metrics": {"views": 1}})))


def boom(request):
    raise RuntimeError("a view that fails")
