"""spacy_ie/_srsly.py: the cached lookup of srsly's msgpack hooks against srsly's own behaviour.

srsly 2.x builds its msgpack hook chain from the catalogue registries
``srsly.msgpack.msgpack_encoders`` / ``msgpack_decoders`` on every call; the cache must give the
same hooks in the same order, see hooks registered, replaced or removed later through srsly's and
catalogue's API, give byte-identical msgpack output, leave srsly untouched when switched off
(SPACY_IE_SRSLY_HOOK_CACHE=0) and do nothing, without raising, when srsly or catalogue have
another shape (srsly 3.0 has no ``srsly.msgpack``).
"""
import json
import os
import subprocess
import sys
import types
from typing import Any, Iterator, List

import catalogue
import numpy
import pytest
import spacy
import srsly
from spacy.tokens import Doc, Span
from srsly.msgpack import msgpack_decoders, msgpack_encoders

from spacy_ie import Relation
from spacy_ie._srsly import (
    ENV_VAR,
    CachedHooks,
    cache_msgpack_hooks,
    hook_cache_enabled,
    msgpack_registries,
    restore_msgpack_hooks,
)

REGISTRIES = (msgpack_encoders, msgpack_decoders)
GROUPS = ["srsly_msgpack_encoders", "srsly_msgpack_decoders"]
NLP = spacy.blank("en")


def is_cached(registry: catalogue.Registry) -> bool:
    return isinstance(registry.__dict__.get("get_all"), CachedHooks)


@pytest.fixture
def cached(monkeypatch) -> Iterator[None]:
    """A freshly installed cache on both registries; afterwards the state the import left."""
    if msgpack_encoders.get_entry_points() or msgpack_decoders.get_entry_points():
        pytest.skip("an installed package extends srsly's msgpack hooks: the stock lookup is kept")
    monkeypatch.delenv(ENV_VAR, raising=False)
    restore_msgpack_hooks()
    assert cache_msgpack_hooks() == GROUPS
    yield
    monkeypatch.undo()  # before re-caching: the test's monkeypatches and the environment
    restore_msgpack_hooks()
    cache_msgpack_hooks()


@pytest.fixture
def stock(monkeypatch) -> Iterator[None]:
    """srsly's own lookup during the test; afterwards the state the import left."""
    restore_msgpack_hooks()
    yield
    monkeypatch.undo()
    restore_msgpack_hooks()
    cache_msgpack_hooks()


class Point:
    def __init__(self, x: int) -> None:
        self.x = x


def encode_point(obj: Any, chain=None) -> Any:
    if isinstance(obj, Point):
        return {"__point__": obj.x}
    return obj if chain is None else chain(obj)


def decode_point(obj: Any, chain=None) -> Any:
    if "__point__" in obj:
        return Point(obj["__point__"])
    return obj if chain is None else chain(obj)


def register_point(name: str) -> None:
    """Register the Point hooks through srsly's public registries, as a user would."""
    srsly.msgpack_encoders.register(name, func=encode_point)
    srsly.msgpack_decoders.register(name, func=decode_point)


def unregister(name: str) -> None:
    for registry in REGISTRIES:
        key = (*registry.namespace, name)
        if key in catalogue.REGISTRY:
            catalogue._remove(key)


def test_the_import_caches_both_registries_and_answers_as_catalogue_does():
    if msgpack_encoders.get_entry_points() or msgpack_decoders.get_entry_points():
        pytest.skip("an installed package extends srsly's msgpack hooks: the stock lookup is kept")
    for registry in REGISTRIES:
        assert is_cached(registry)
        assert registry.entry_points is True  # catalogue's own setting is left as srsly made it
        cached_hooks = registry.get_all()
        stock_hooks = catalogue.Registry.get_all(registry)
        assert list(cached_hooks.items()) == list(stock_hooks.items())  # same hooks, same order
        assert "numpy" in cached_hooks


def test_a_doc_with_relations_round_trips_without_a_registry_lookup(cached, monkeypatch):
    """A Doc with relations has a non-empty user_data: two more srsly msgpack calls per
    to_bytes/from_bytes. None of them may ask catalogue again while its registry is unchanged."""
    doc = NLP("Ada Lovelace worked with Charles Babbage in London .")
    doc.ents = [Span(doc, 0, 2, "PER"), Span(doc, 4, 6, "PER")]
    doc._.relations = [Relation(doc.ents[0], doc.ents[1], "knows", 0.5)]
    Doc(NLP.vocab).from_bytes(doc.to_bytes())  # the cache is filled
    lookups: List[catalogue.Registry] = []
    real_get_all = catalogue.Registry.get_all
    monkeypatch.setattr(catalogue.Registry, "get_all", lambda self: lookups.append(self) or real_get_all(self))
    back = Doc(NLP.vocab).from_bytes(doc.to_bytes())
    assert lookups == []
    assert back._.relations_data == doc._.relations_data
    srsly.msgpack_encoders.register("spacy_ie_test_noop", func=encode_point)
    try:
        srsly.msgpack_dumps({"a": 1})
        assert lookups == [msgpack_encoders]  # a registration makes the next call ask again
    finally:
        unregister("spacy_ie_test_noop")


def test_hooks_registered_through_srsly_after_the_import_are_used(cached):
    assert srsly.msgpack_loads(srsly.msgpack_dumps({"a": 1})) == {"a": 1}  # the cache is filled
    with pytest.raises(TypeError):
        srsly.msgpack_dumps([Point(3)])
    register_point("spacy_ie_test_point")
    try:
        assert srsly.msgpack_loads(srsly.msgpack_dumps([Point(3)]))[0].x == 3
        assert list(msgpack_encoders.get_all()) == list(catalogue.Registry.get_all(msgpack_encoders))
    finally:
        unregister("spacy_ie_test_point")
    with pytest.raises(TypeError):  # and removing them is seen too
        srsly.msgpack_dumps([Point(3)])


def test_a_hook_replaced_under_the_same_name_is_used(cached):
    """Re-registering a name keeps the registry's size and order: only the cached function's
    identity tells the cache."""
    original = catalogue.REGISTRY[("srsly", "msgpack_encoders", "numpy")]
    calls = []

    def counting(obj, chain=None):
        calls.append(type(obj))
        return original(obj, chain=chain)

    array = numpy.arange(3, dtype="int32")
    srsly.msgpack_dumps(array)
    srsly.msgpack_encoders.register("numpy", func=counting)
    try:
        assert numpy.array_equal(srsly.msgpack_loads(srsly.msgpack_dumps(array)), array)
        assert calls == [numpy.ndarray]
    finally:
        srsly.msgpack_encoders.register("numpy", func=original)
    srsly.msgpack_dumps(array)
    assert calls == [numpy.ndarray]


def test_a_hook_added_while_another_key_goes_is_used(cached):
    """The registry keeps its size (one key removed, one added): the new last key tells the cache."""
    catalogue._set(("spacy_ie_test", "placeholder"), object())
    try:
        srsly.msgpack_dumps({"a": 1})  # the cache is filled at this size
        size = len(catalogue.REGISTRY)
        catalogue._remove(("spacy_ie_test", "placeholder"))
        register_point("spacy_ie_test_point")
        catalogue._remove(("srsly", "msgpack_decoders", "spacy_ie_test_point"))
        assert len(catalogue.REGISTRY) == size
        assert srsly.msgpack_loads(srsly.msgpack_dumps([Point(5)])) == [{"__point__": 5}]
    finally:
        unregister("spacy_ie_test_point")
        if ("spacy_ie_test", "placeholder") in catalogue.REGISTRY:
            catalogue._remove(("spacy_ie_test", "placeholder"))


def same(a: Any, b: Any) -> bool:
    """Equal values of the same types all the way down (numpy arrays: dtype, shape, items)."""
    if isinstance(a, numpy.ndarray):
        return isinstance(b, numpy.ndarray) and (a.dtype, a.shape) == (b.dtype, b.shape) and numpy.array_equal(a, b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def test_msgpack_round_trips_are_identical_with_and_without_the_cache(cached):
    doc = NLP("Ada Lovelace worked with Charles Babbage in London .")
    doc.ents = [Span(doc, 0, 2, "PER"), Span(doc, 4, 6, "PER"), Span(doc, 7, 8, "LOC")]
    ada, charles, london = doc.ents
    doc._.relations = [Relation(ada, charles, "knows", 0.5), Relation(ada, london, "lives_in", 0.25)]
    values = [
        {"text": "Ada Lovelace", "offsets": [0, 3, 4, 12], "score": 0.5, "none": None, "flag": True},
        {"nested": {"a": [1.5, -2, (3, "x")], "b": b"\x00\xff"}},
        numpy.arange(6, dtype="float32").reshape(2, 3),
        numpy.asfortranarray(numpy.arange(6, dtype="int64").reshape(2, 3)),
        numpy.zeros((0, 4), dtype="uint64"),
        numpy.float32(1.5),
        numpy.bool_(True),
        list(doc.user_data.keys()),  # as Doc.to_bytes packs them: keys and values apart
        list(doc.user_data.values()),
    ]
    with_cache = [srsly.msgpack_dumps(v) for v in values]
    with_cache_back = [srsly.msgpack_loads(b) for b in with_cache]
    doc_bytes = doc.to_bytes()
    restore_msgpack_hooks()
    assert not any(is_cached(r) for r in REGISTRIES)
    stock = [srsly.msgpack_dumps(v) for v in values]
    stock_back = [srsly.msgpack_loads(b) for b in stock]
    assert with_cache == stock
    for value, a, b in zip(values, with_cache_back, stock_back):
        assert same(a, b), value
    assert doc.to_bytes() == doc_bytes
    for data in (doc_bytes, doc.to_bytes()):
        assert Doc(NLP.vocab).from_bytes(data)._.relations_data == doc._.relations_data


def test_the_stock_lookup_is_kept_when_a_package_extends_msgpack(stock, monkeypatch):
    monkeypatch.setattr(msgpack_encoders, "get_entry_points", lambda: {"custom": lambda obj, chain=None: obj})
    assert cache_msgpack_hooks() == ["srsly_msgpack_decoders"]
    assert not is_cached(msgpack_encoders)
    assert msgpack_encoders.entry_points is True


@pytest.mark.parametrize(
    "value,enabled",
    [("0", False), (" Off ", False), ("false", False), ("no", False), ("1", True), ("", True), (None, True)],
)
def test_the_environment_variable_switches_the_cache(monkeypatch, value, enabled):
    if value is None:
        monkeypatch.delenv(ENV_VAR, raising=False)
    else:
        monkeypatch.setenv(ENV_VAR, value)
    assert hook_cache_enabled() is enabled


def test_the_environment_variable_off_does_nothing(stock, monkeypatch):
    monkeypatch.setenv(ENV_VAR, "0")
    assert cache_msgpack_hooks() == []
    assert not any(is_cached(r) for r in REGISTRIES)


# A fresh interpreter: what srsly looks like before and after `import spacy_ie` (which imports
# spacy_ie.relations and so spacy_ie._srsly).
SNAPSHOT = """
import json, catalogue, srsly, srsly.msgpack as m
REGISTRIES = (m.msgpack_encoders, m.msgpack_decoders)
MODULES = (srsly, m, catalogue, catalogue.Registry)
def state(names):
    return {
        "registries": [{k: repr(v) for k, v in vars(r).items()} for r in REGISTRIES],
        "modules": [{k: id(vars(mod).get(k)) for k in keys} for mod, keys in zip(MODULES, names)],
    }
names = [list(vars(mod)) for mod in MODULES]  # what importing other srsly submodules adds is not compared
before = state(names)
import spacy_ie
after = state(names)
print(json.dumps({
    "same": before == after,
    "cached": [type(r.__dict__.get("get_all")).__name__ for r in REGISTRIES],
    "n": len(srsly.msgpack_loads(srsly.msgpack_dumps([1, 2]))),
}))
"""


def import_in_subprocess(env_value: Any) -> dict:
    env = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    if env_value is not None:
        env[ENV_VAR] = env_value
    proc = subprocess.run(
        [sys.executable, "-c", SNAPSHOT], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_with_the_variable_at_0_importing_spacy_ie_leaves_srsly_untouched():
    result = import_in_subprocess("0")
    assert result == {"same": True, "cached": ["NoneType", "NoneType"], "n": 2}


def test_without_the_variable_importing_spacy_ie_installs_the_cache():
    """The counterpart of the test above: the snapshot does see the change."""
    if msgpack_encoders.get_entry_points() or msgpack_decoders.get_entry_points():
        pytest.skip("an installed package extends srsly's msgpack hooks: the stock lookup is kept")
    result = import_in_subprocess(None)
    assert result == {"same": False, "cached": ["CachedHooks", "CachedHooks"], "n": 2}


# --- another shape of srsly or catalogue: do nothing, raise nothing ---------------------------------


class V3Extensions:
    """srsly 3.0's hook registry (srsly/_msgpack_api.py at tag v3.0.0): a plain dict, no catalogue."""

    def __init__(self) -> None:
        self._ext: dict = {}

    def register(self, name, func):
        self._ext[name] = func


def srsly_without_catalogue_hooks() -> types.ModuleType:
    module = types.ModuleType("srsly.msgpack")
    module.msgpack_encoders = V3Extensions()
    module.msgpack_decoders = V3Extensions()
    return module


def packer_without_lookup() -> types.ModuleType:
    import srsly.msgpack as real

    module = types.ModuleType("srsly.msgpack")
    module.__dict__.update(vars(real))

    class Packer:
        def __init__(self, *args, **kwargs):
            self.kwargs = kwargs

    module.Packer = Packer
    return module


@pytest.mark.parametrize(
    "module",
    [None, srsly_without_catalogue_hooks(), packer_without_lookup()],
    ids=["no srsly.msgpack", "srsly 3 registries", "Packer without get_all"],
)
def test_another_srsly_is_left_alone(stock, monkeypatch, module):
    monkeypatch.setitem(sys.modules, "srsly.msgpack", module)  # None: importing it raises ImportError
    assert msgpack_registries() is None
    assert cache_msgpack_hooks() == []
    restore_msgpack_hooks()  # does not raise either
    assert not any(is_cached(r) for r in REGISTRIES)


def test_a_catalogue_that_stores_hooks_elsewhere_is_left_alone(stock, monkeypatch):
    monkeypatch.setattr(catalogue.Registry, "get_all", lambda self: {"elsewhere": encode_point})
    assert msgpack_registries() is None
    assert cache_msgpack_hooks() == []
    assert not any(is_cached(r) for r in REGISTRIES)


def test_a_lookup_replaced_by_someone_else_is_left_alone(stock, monkeypatch):
    theirs = lambda: {}  # noqa: E731
    monkeypatch.setattr(msgpack_encoders, "get_all", theirs, raising=False)
    assert cache_msgpack_hooks() == []
    assert msgpack_encoders.get_all is theirs
    assert not is_cached(msgpack_decoders)
