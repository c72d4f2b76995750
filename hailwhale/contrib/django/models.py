"""
A mixin for models: ``order.whale`` counts and reads under the pk ``[model label, pk]``
(``["shop.Order", "12"]``), which rolls up to the model (``shop.Order``); ``Order.whale``
is the model's own::

    class Order(WhaleModel, models.Model): ...

    order.whale.count_now({"country": "US"}, {"revenue": 5})
    order.whale.total("revenue", period="seven")
    order.whale.plotpoints(metrics=["revenue"], period="thirty")
    order.whale.graph_tag("country", "revenue")
    order.whale.related("customer").count_now(metrics={"revenue": 3})    # the original's count_now_related
    Order.whale.total("revenue")                                          # every order

``related(obj_or_field)`` nests the related object into the dimensions,
``{"shop.Customer": {"7": dimensions}}`` (or ``{"shop.Customer": "7"}`` without
dimensions), as the original's ``*_related`` methods did; ``count_now_related(relation,
...)`` and the other ``*_related`` names are kept.  The methods go to the backend
(:func:`hailwhale.contrib.django.backend`).
"""

from hailwhale.contrib.django import backend

# methods whose first argument is the pk, and where their dimensions go: (position after the pk, keyword)
_DIMENSIONS_AT = {
    "count": (0, "dimensions"),
    "count_now": (0, "dimensions"),
    "totals": (0, "dimensions"),
    "plotpoints": (0, "dimensions"),
    "total": (1, "dimension"),
    "rank": (1, "dimension"),
    "graph_tag": (0, "dimension"),
    "get_subdimensions": (0, "dimension"),
    "all_subdimensions": (0, "dimension"),
}
_PK_FIRST = (
    *_DIMENSIONS_AT,
    "count_decision",
    "count_decided_now",
    "decide",
    "pks",
    "scalar_plotpoints",
    "ratio_plotpoints",
    "rank_subdimensions_scalar",
    "rank_subdimensions_ratio",
)


def model_pk(instance) -> list[str]:
    """``[model label, pk]`` of a model instance, ``[model label]`` of a model."""
    meta = instance._meta
    if isinstance(instance, type):
        return [meta.label]
    if instance.pk is None:
        raise ValueError(f"this {meta.label} has no pk yet: save it before counting under it")
    return [meta.label, str(instance.pk)]


class BoundWhale:
    """The backend's methods with the pk (and, for :meth:`related`, the relation) filled in."""

    def __init__(self, pk: list[str], relation: tuple[str, str] | None = None, owner=None):
        self.pk = pk
        self._relation = relation
        self._owner = owner

    def related(self, relation) -> "BoundWhale":
        """The same, with ``relation`` (a model instance, or the name of a field) nested in the dimensions."""
        if isinstance(relation, str):
            if self._owner is None:
                raise ValueError("a relation by name needs an instance: order.whale.related('customer')")
            relation = getattr(self._owner, relation)
        label, key = model_pk(relation)
        return BoundWhale(self.pk, (label, key), self._owner)

    def _nested(self, dimensions):
        assert self._relation is not None
        label, key = self._relation
        if dimensions in (None, "_"):
            return {label: key}
        return {label: {key: dimensions}}

    def __getattr__(self, name: str):
        if name not in _PK_FIRST:
            raise AttributeError(name)
        method = getattr(backend(), name)

        def bound(*args, **kwargs):
            if self._relation is not None and name in _DIMENSIONS_AT:
                position, keyword = _DIMENSIONS_AT[name]
                args = list(args)
                if len(args) > position:
                    args[position] = self._nested(args[position])
                else:
                    key = keyword if keyword in kwargs or keyword == "dimension" else "dimensions"
                    kwargs[key] = self._nested(kwargs.get(key))
            return method(self.pk, *args, **kwargs)

        bound.__name__ = name
        return bound


class _WhaleDescriptor:
    def __get__(self, instance, owner) -> BoundWhale:
        return BoundWhale(model_pk(owner if instance is None else instance), owner=instance)


class WhaleModel:
    """Gives a model ``.whale`` (see the module), and the original's ``*_related`` names."""

    whale = _WhaleDescriptor()

    def _whale_related(self, method: str, relation, *args, **kwargs):
        return getattr(self.whale.related(relation), method)(*args, **kwargs)

    def count_now_related(self, relation, *args, **kwargs):
        return self._whale_related("count_now", relation, *args, **kwargs)

    def count_related(self, relation, *args, **kwargs):
        return self._whale_related("count", relation, *args, **kwargs)

    def totals_related(self, relation, *args, **kwargs):
        return self._whale_related("totals", relation, *args, **kwargs)

    def plotpoints_related(self, relation, *args, **kwargs):
        return self._whale_related("plotpoints", relation, *args, **kwargs)

    def graph_tag_related(self, relation, *args, **kwargs):
        return self._whale_related("graph_tag", relation, *args, **kwargs)
