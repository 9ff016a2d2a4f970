"""Make srsly 2.x's msgpack calls cheap again (issue #15, item 6: n_process scaling).

Every ``srsly.msgpack_dumps`` / ``msgpack_loads`` builds a Packer or Unpacker, whose
``__init__`` asks the catalogue registries ``srsly.msgpack_encoders`` / ``msgpack_decoders``
for all their hooks (srsly/msgpack/__init__.py, srsly 2.4 to 2.5). ``catalogue.Registry.get_all``
answers by filtering every installed package's entry points (the registries are created with
``entry_points=True``) and by walking catalogue's whole global registry: about 0.3 ms of CPU per
call on an idle machine here, against under 1 us for packing a small object (see BENCHMARKS.md,
"Long documents and multiprocessing"; docs/upstream/srsly-msgpack-hooks.md for the upstream
side).

``Doc.to_bytes``/``from_bytes`` make one such call per Doc, plus two more (the keys and the
values of ``doc.user_data``) as soon as ``doc.user_data`` is not empty: every Doc with
``doc._.relations`` pays them. ``nlp.pipe(n_process=...)`` ships every Doc from the workers with
``Doc.to_bytes`` and the parent process alone rebuilds them with ``Doc.from_bytes``, so that
fixed cost per Doc lands on the serial part: a second process gained 1.09x without the relation
extractor and lost time (0.80x) with it; with the cache, 1.46x and 1.49x.

`cache_msgpack_hooks` (called when ``spacy_ie.relations`` is imported) gives each of the two
registries a `CachedHooks` lookup, set as the registry object's own ``get_all`` attribute: the
same answer as catalogue's ``Registry.get_all``, computed again when catalogue's global registry
changed. Nothing else in srsly or catalogue is touched. It is applied only

- when srsly and catalogue still have the shape it relies on (`msgpack_registries`): srsly's
  ``srsly.msgpack`` module with two ``catalogue.Registry`` objects that its Packer and unpack
  functions ask with ``get_all``, and catalogue's ``REGISTRY`` dict holding exactly what
  ``get_all`` returns. srsly 3.0 (tagged, not released) has no ``srsly.msgpack`` and keeps its
  hooks in plain dicts without a lookup per call; there, and on any other mismatch, nothing is
  changed and nothing is raised;
- to a registry that no installed package extends through entry points (catalogue reads the
  entry points once, at import, so for such a registry that part can only return nothing);
- unless the environment variable ``SPACY_IE_SRSLY_HOOK_CACHE`` is ``0`` (or ``false``, ``no``,
  ``off``; any case) when ``spacy_ie`` is imported: then srsly is left exactly as it is, at the
  cost above per msgpack call. `restore_msgpack_hooks` undoes the cache in a running process.

Upstream: catalogue's PR explosion/catalogue#43 (merged on its master in 2022, in no release as of
catalogue 2.0.10) made the registry walk cheaper but still reads the entry points on every call;
srsly 3.0 drops catalogue for these hooks.
"""
import importlib
import os
from typing import Any, Dict, List, Optional, Tuple

import catalogue

ENV_VAR = "SPACY_IE_SRSLY_HOOK_CACHE"
"""Set it to ``0`` (or ``false``/``no``/``off``) to leave srsly's msgpack hook lookup as it is."""
_OFF = {"0", "false", "no", "off"}
# srsly.msgpack attributes that look the hooks up (their code must name ``get_all``).
_LOOKUP_USERS = ("Packer.__init__", "Unpacker.__init__", "unpackb")


def hook_cache_enabled() -> bool:
    """RETURNS (bool): False when the environment variable ``SPACY_IE_SRSLY_HOOK_CACHE`` is
    ``0``, ``false``, ``no`` or ``off`` (any case, surrounding spaces ignored), else True."""
    return os.environ.get(ENV_VAR, "").strip().lower() not in _OFF


def _calls_get_all(module: Any, dotted: str) -> bool:
    """Whether the function at `dotted` in `module` refers to an attribute named ``get_all``."""
    obj = module
    for name in dotted.split("."):
        obj = getattr(obj, name)
    return "get_all" in obj.__code__.co_names


def msgpack_registries() -> Optional[Tuple[catalogue.Registry, catalogue.Registry]]:
    """srsly's msgpack encoder and decoder registries, if srsly and catalogue have the shape
    `CachedHooks` relies on (srsly 2.4 to 2.5, catalogue 2.0), else None. Never raises.

    The shape: ``srsly.msgpack`` imports; its ``msgpack_encoders`` / ``msgpack_decoders`` are
    ``catalogue.Registry`` objects with the namespaces ``("srsly", "msgpack_encoders")`` /
    ``("srsly", "msgpack_decoders")`` and no ``get_all`` of their own other than a
    `CachedHooks`; srsly's ``Packer.__init__``, ``Unpacker.__init__`` and ``unpackb`` name
    ``get_all``; ``catalogue.REGISTRY`` is a dict and ``catalogue.AVAILABLE_ENTRY_POINTS``
    exists, and for a registry without entry points
    ``catalogue.Registry.get_all`` returns exactly its entries under the registry's namespace.

    RETURNS (Optional[Tuple[Registry, Registry]]): (encoders, decoders), or None.
    """
    try:
        srsly_msgpack = importlib.import_module("srsly.msgpack")
        table = catalogue.REGISTRY
        catalogue.AVAILABLE_ENTRY_POINTS  # read by CachedHooks
        if not isinstance(table, dict) or not all(_calls_get_all(srsly_msgpack, f) for f in _LOOKUP_USERS):
            return None
        registries = []
        for name in ("msgpack_encoders", "msgpack_decoders"):
            registry = getattr(srsly_msgpack, name)
            namespace = ("srsly", name)
            own = registry.__dict__.get("get_all")
            if not isinstance(registry, catalogue.Registry) or tuple(registry.namespace) != namespace:
                return None
            if own is not None and not isinstance(own, CachedHooks):
                return None  # someone else replaced this lookup: leave it alone
            if not (registry.entry_points and registry.get_entry_points()):
                stored = {key[-1]: value for key, value in table.items() if key[:-1] == namespace}
                if catalogue.Registry.get_all(registry) != stored:
                    return None
            registries.append(registry)
        return registries[0], registries[1]
    except Exception:  # any other shape of srsly or catalogue: change nothing, never fail an import
        return None


class CachedHooks:
    """A drop-in ``get_all`` for one srsly msgpack registry without entry points.

    Returns a copy of ``catalogue.Registry.get_all(registry)`` (name -> hook function, in
    registration order, the order srsly chains them in), recomputed when catalogue's global
    registry may have changed: its size or its last-inserted key changed (a function registered
    or removed anywhere; a new key always goes last in a dict), one of the cached hooks was
    replaced or removed, or ``catalogue.AVAILABLE_ENTRY_POINTS`` was replaced. So hooks
    registered or replaced after it was installed are used from the next msgpack call on. Not
    noticed: a change that leaves the size, the last key and the cached hooks as they were
    (e.g. deleting the last key and another one, then adding a hook and re-adding that last
    key), which catalogue's own API does not do (it has no public removal). Cost per call:
    about 1 us (a few dict look-ups), against about 0.3 ms for the stock lookup.
    """

    def __init__(self, registry: catalogue.Registry) -> None:
        self.registry = registry
        self._state: Tuple[Any, Dict[str, Any], List[Tuple[Tuple[str, ...], Any]]] = (None, {}, [])

    def __call__(self) -> Dict[str, Any]:
        table = catalogue.REGISTRY
        signature = (len(table), next(reversed(table), None), id(catalogue.AVAILABLE_ENTRY_POINTS))
        cached, hooks, keys = self._state  # one read: safe against a recompute in another thread
        if signature != cached or any(table.get(key) is not func for key, func in keys):
            hooks = catalogue.Registry.get_all(self.registry)
            namespace = tuple(self.registry.namespace)
            self._state = (signature, hooks, [(namespace + (name,), func) for name, func in hooks.items()])
        return dict(hooks)


def cache_msgpack_hooks() -> List[str]:
    """Install a `CachedHooks` lookup on srsly's msgpack encoder and decoder registries, each
    when no installed package declares entry points for it. Does nothing when the environment
    variable ``SPACY_IE_SRSLY_HOOK_CACHE`` is ``0`` (`hook_cache_enabled`) or when srsly or
    catalogue do not have the expected shape (`msgpack_registries`). Never raises. Safe to call
    any number of times (it is called when ``spacy_ie.relations`` is imported).

    RETURNS (List[str]): the entry-point groups of the registries changed by this call, e.g.
        ``["srsly_msgpack_encoders", "srsly_msgpack_decoders"]``; empty if none.
    """
    if not hook_cache_enabled():
        return []
    registries = msgpack_registries()
    if registries is None:
        return []
    changed = []
    for registry in registries:
        if isinstance(registry.__dict__.get("get_all"), CachedHooks):
            continue
        if registry.entry_points and registry.get_entry_points():
            continue  # a package extends srsly's msgpack hooks: keep the stock lookup
        registry.get_all = CachedHooks(registry)
        changed.append(registry.entry_point_namespace)
    return changed


def restore_msgpack_hooks() -> None:
    """Undo `cache_msgpack_hooks` (srsly's stock lookup, with the entry-point scan), e.g. to
    measure the difference (benchmarks/multiprocess.py --stock-srsly). Never raises."""
    try:
        srsly_msgpack = importlib.import_module("srsly.msgpack")
    except ImportError:
        return
    for name in ("msgpack_encoders", "msgpack_decoders"):
        registry = getattr(srsly_msgpack, name, None)
        if isinstance(getattr(registry, "__dict__", {}).get("get_all"), CachedHooks):
            del registry.get_all
