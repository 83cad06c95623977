"""``cairn demo``: fill an empty catalogue with a realistic, deterministic demo facility.

Nothing in Cairn imports this package except the command line (``cairn demo`` and
``cairn serve --demo``); tests and benchmarks use it to get a catalogue worth querying.

- :mod:`cairn.demo.generate` generates the facility, one investigation at a time, and loads it
  in one transaction (:func:`load_demo`);
- :mod:`cairn.demo.bulk` writes the generated rows in batches, with ids it assigns itself;
- :mod:`cairn.demo.vocab` is the facility's static vocabulary (beamlines, formats, parameter
  types, names), pure data;
- :mod:`cairn.demo.rules` is who may see what (Rule and PublicStep rows), and
  :mod:`cairn.demo.accounts` the demo users' password and how to sign in;
- :mod:`cairn.demo.contents` makes each datafile's bytes, and :mod:`cairn.demo.files` writes
  them to the data service's main storage;
- :mod:`cairn.demo.publications` records the published investigations' DOIs.
"""

from cairn.demo.generate import DEMO_ENTITIES, CatalogueNotEmpty, load_demo

__all__ = ["DEMO_ENTITIES", "CatalogueNotEmpty", "load_demo"]
