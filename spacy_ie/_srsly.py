"""Make srsly's msgpack calls cheap again when no package extends them (issue #15, item 6).

Every ``srsly.msgpack_dumps`` / ``msgpack_loads`` builds a Packer or Unpacker, whose
``__init__`` asks the catalogue registries ``srsly.msgpack_encoders`` / ``msgpack_decoders``
for all their functions (srsly/msgpack/__init__.py). Those registries are created with
``entry_points=True``, so each call also filters every installed package's entry points
(``catalogue.Registry.get_all`` -> ``AVAILABLE_ENTRY_POINTS.select``): about 0.6 ms of the
1 ms a tiny msgpack call costs in this environment (see BENCHMARKS.md, "Multiprocessing").

``Doc.to_bytes``/``from_bytes`` make one such call per Doc, plus two more (the keys and the
values of ``doc.user_data``) as soon as ``doc.user_data`` is not empty: any Doc with
``doc._.relations`` pays them. ``nlp.pipe(n_process=...)`` ships every Doc from the workers with
``Doc.to_bytes`` and the parent process alone rebuilds them with ``Doc.from_bytes``, so that
fixed cost per Doc lands on the serial part and erodes the speed-up.

catalogue reads the entry points once, when it is imported (``AVAILABLE_ENTRY_POINTS``), so
when no installed package declares an ``srsly_msgpack_encoders`` / ``srsly_msgpack_decoders``
entry point, looking them up again on every call can only return nothing: turning the lookup
off for those two registries changes no result. When a package does declare one, nothing is
changed. The upstream discussion of this hot spot: explosion/catalogue#43.
"""
from typing import List

from srsly.msgpack import msgpack_decoders, msgpack_encoders


def skip_empty_msgpack_entry_points() -> List[str]:
    """Stop srsly's msgpack encoder/decoder registries from scanning the installed packages'
    entry points on every pack/unpack, for each registry that has no entry points at all.

    Safe to call any number of times (it is called when ``spacy_ie.relations`` is imported).
    RETURNS (List[str]): the entry-point groups for which the scan was turned off (empty when
        some package extends srsly's msgpack hooks, or when it was already off).
    """
    changed = []
    for registry in (msgpack_encoders, msgpack_decoders):
        if registry.entry_points and not registry.get_entry_points():
            registry.entry_points = False
            changed.append(registry.entry_point_namespace)
    return changed
