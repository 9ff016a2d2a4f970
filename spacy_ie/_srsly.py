"""Make srsly's msgpack calls cheap again (issue #15, item 6: n_process scaling).

Every ``srsly.msgpack_dumps`` / ``msgpack_loads`` builds a Packer or Unpacker, whose
``__init__`` asks the catalogue registries ``srsly.msgpack_encoders`` / ``msgpack_decoders``
for all their hooks (srsly/msgpack/__init__.py). ``catalogue.Registry.get_all`` answers by
filtering every installed package's entry points (the registries are created with
``entry_points=True``) and by walking catalogue's whole global registry: about 0.3 ms of CPU per
call in this environment, against under 1 us for packing a small object (see BENCHMARKS.md,
"Long documents and multiprocessing").

``Doc.to_bytes``/``from_bytes`` make one such call per Doc, plus two more (the keys and the
values of ``doc.user_data``) as soon as ``doc.user_data`` is not empty: every Doc with
``doc._.relations`` pays them. ``nlp.pipe(n_process=...)`` ships every Doc from the workers with
``Doc.to_bytes`` and the parent process alone rebuilds them with ``Doc.from_bytes``, so that
fixed cost per Doc lands on the serial part: a second process gained 1.09x without the relation
extractor and lost time (0.80x) with it; with the cache, 1.46x and 1.49x.

`cache_msgpack_hooks` gives each of the two registries a `CachedHooks` lookup: the same
answer as ``get_all``, computed again only when catalogue's global registry changed. It is
applied only to a registry that no installed package extends through entry points (catalogue
reads the entry points once, at import, so for such a registry that part can only return
nothing); otherwise nothing is changed. Upstream discussion of the hot spot:
explosion/catalogue#43.
"""
from typing import Any, Dict, List, Tuple

import catalogue
from srsly.msgpack import msgpack_decoders, msgpack_encoders

REGISTRIES = (msgpack_encoders, msgpack_decoders)


class CachedHooks:
    """A drop-in ``get_all`` for one srsly msgpack registry without entry points.

    Returns a copy of ``catalogue.Registry.get_all(registry)``, recomputed when catalogue's
    global registry changed size (a function registered or removed anywhere) or when one of the
    cached hooks was replaced, so hooks registered after this was installed are still used.
    """

    def __init__(self, registry: catalogue.Registry) -> None:
        self.registry = registry
        self.size = -1
        self.hooks: Dict[str, Any] = {}
        self.keys: List[Tuple[Tuple[str, ...], Any]] = []

    def __call__(self) -> Dict[str, Any]:
        table = catalogue.REGISTRY
        if len(table) != self.size or any(table.get(key) is not func for key, func in self.keys):
            self.hooks = catalogue.Registry.get_all(self.registry)
            namespace = tuple(self.registry.namespace)
            self.keys = [(namespace + (name,), func) for name, func in self.hooks.items()]
            self.size = len(table)
        return dict(self.hooks)


def cache_msgpack_hooks() -> List[str]:
    """Install a `CachedHooks` lookup on srsly's msgpack encoder and decoder registries, each
    when no installed package declares entry points for it. Safe to call any number of times
    (it is called when ``spacy_ie.relations`` is imported).

    RETURNS (List[str]): the entry-point groups of the registries changed by this call.
    """
    changed = []
    for registry in REGISTRIES:
        if isinstance(registry.__dict__.get("get_all"), CachedHooks):
            continue
        if registry.entry_points and registry.get_entry_points():
            continue  # a package extends srsly's msgpack hooks: keep the stock lookup
        registry.entry_points = False
        registry.get_all = CachedHooks(registry)
        changed.append(registry.entry_point_namespace)
    return changed


def restore_msgpack_hooks() -> None:
    """Undo `cache_msgpack_hooks` (srsly's stock lookup, with the entry-point scan), e.g. to
    measure the difference (benchmarks/multiprocess.py --stock-srsly)."""
    for registry in REGISTRIES:
        if isinstance(registry.__dict__.get("get_all"), CachedHooks):
            del registry.get_all
            registry.entry_points = True
