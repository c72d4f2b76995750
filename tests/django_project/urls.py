from django.urls import include, path

from tests.django_project import views

shop = ([path("orders/<int:pk>/", views.order, name="order"), path("boom/", views.boom, name="boom")], "shop")
urlpatterns = [path("", include(shop))]
