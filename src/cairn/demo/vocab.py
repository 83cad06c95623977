"""Static vocabulary of the demo facility: beamlines, formats, parameter types, names.

Pure data, kept apart from the generator in :mod:`cairn.demo.generate` so the facility can be
read (and changed) at a glance. Everything here is fictional; domains use ``example.org`` and DOIs
the DataCite test prefix ``10.5072``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict


class FacilityFields(TypedDict):
    """The demo's one Facility row, keyed by ICAT field name."""

    name: str
    fullName: str
    description: str
    url: str
    daysUntilRelease: int


FACILITY: FacilityFields = {
    "name": "LSF",
    "fullName": "Lakeside Synchrotron Facility",
    "description": "A fictional third-generation synchrotron light source with six beamlines "
                   "for structural biology, materials science and imaging. Demo data of Cairn.",
    "url": "https://www.lsf.example.org",
    "daysUntilRelease": 1095,  # three-year embargo, as at most photon facilities
}

DOI_PREFIX = "10.5072"  # DataCite's test prefix: never resolves to a real object
FIRST_YEAR = 2016
LAST_YEAR = 2025  # fixed, not "this year": the same seed must give the same catalogue
# (month, day) of each cycle's start and end: two user cycles a year around a shutdown.
CYCLES = (((2, 1), (7, 15)), ((9, 1), (12, 18)))

# name, weight
INVESTIGATION_TYPES = (("experiment", 80), ("rapid access", 10), ("commissioning", 4),
                       ("in-house research", 4), ("industrial", 2))
INVESTIGATION_TYPE_DESCRIPTIONS = {
    "experiment": "Peer-reviewed beamtime proposal",
    "rapid access": "Short experiment scheduled outside the review rounds",
    "commissioning": "Beamline commissioning by facility staff",
    "in-house research": "Research by facility scientists",
    "industrial": "Proprietary beamtime for an industrial client",
}

DATASET_TYPES = (("raw", "Data as collected at the beamline"),
                 ("processed", "Data reduced or analysed by the facility pipelines"),
                 ("calibration", "Detector and beam calibration measurements"))

# name, version, type, description, file extension
DATAFILE_FORMATS = (
    ("nexus", "4.4", "HDF5", "NeXus/HDF5 master file", "nxs"),
    ("hdf5", "1.12", "HDF5", "HDF5 detector data", "h5"),
    ("cbf", "1.4", "binary", "Crystallographic Binary File", "cbf"),
    ("tiff", "6.0", "image", "TIFF image", "tif"),
    ("ascii", "1.0", "text", "Column data", "dat"),
    ("log", "1.0", "text", "Acquisition log", "log"),
    ("mtz", "1.1", "binary", "Merged reflection data", "mtz"),
)
# (low, high) size in bytes of real files per format. The demo draws a file's place in this
# range and gives it that place in DEMO_FILE_SIZES, files small enough to write by the
# thousand (drawing as before keeps the rest of the demo unchanged).
FILE_SIZES = {"nexus": (40_000, 400_000), "hdf5": (50_000_000, 900_000_000),
              "cbf": (5_800_000, 6_400_000), "tiff": (8_000_000, 16_800_000),
              "ascii": (8_000, 120_000), "log": (2_000, 90_000), "mtz": (1_000_000, 40_000_000)}
# (low, high) size in bytes of the demo's files per format, at the default file size
# (DEFAULT_FILE_SIZE); another file size scales them all.
DEMO_FILE_SIZES = {"nexus": (3_000, 9_000), "hdf5": (4_000, 12_000), "cbf": (3_000, 4_000),
                   "tiff": (3_000, 6_000), "ascii": (1_000, 6_000), "log": (1_000, 6_000),
                   "mtz": (6_000, 16_000)}
DEFAULT_FILE_SIZE = 4096

N, S, D = "NUMERIC", "STRING", "DATE_AND_TIME"


@dataclass(frozen=True)
class ParamType:
    name: str
    units: str
    units_full: str | None
    value_type: str
    applicable: frozenset[str]  # of I, S, DS, DF: Investigation, Sample, Dataset, Datafile
    description: str
    low: float = 0.0  # range of generated values (also min/max for enforced types)
    high: float = 0.0
    permissible: tuple[str, ...] = ()  # enforced STRING types: the allowed values

    @property
    def enforced(self) -> bool:
        return bool(self.permissible)


def _pt(name: str, units: str, units_full: str | None, vt: str, applicable: str,
        description: str, low: float = 0.0, high: float = 0.0,
        permissible: tuple[str, ...] = ()) -> ParamType:
    return ParamType(name, units, units_full, vt, frozenset(applicable.split()), description,
                     low, high, permissible)


PARAMETER_TYPES = (
    _pt("temperature", "K", "kelvin", N, "S DS DF", "Sample temperature", 1.5, 1500.0),
    _pt("photon_energy", "eV", "electronvolt", N, "DS DF", "Incident photon energy",
        100.0, 30000.0),
    _pt("wavelength", "Angstrom", "angstrom", N, "DS", "Incident wavelength", 0.4, 6.0),
    _pt("detector_distance", "mm", "millimetre", N, "DS", "Sample to detector distance",
        80.0, 9000.0),
    _pt("exposure_time", "s", "second", N, "DS DF", "Exposure time per frame", 0.002, 20.0),
    _pt("beam_current", "mA", "milliampere", N, "DF", "Storage ring current", 290.0, 302.0),
    _pt("pressure", "bar", "bar", N, "S DS", "Sample environment pressure", 0.0, 300.0),
    _pt("sample_mass", "mg", "milligram", N, "S", "Mass of the sample", 0.05, 500.0),
    _pt("resolution", "Angstrom", "angstrom", N, "DS DF", "Resolution of the processed data",
        0.9, 3.8),
    _pt("voxel_size", "um", "micrometre", N, "DS", "Reconstruction voxel size", 0.3, 12.0),
    _pt("sample_state", "N/A", None, S, "S DS", "Physical state of the sample",
        permissible=("single crystal", "powder", "solid", "thin film", "liquid", "solution")),
    _pt("scan_type", "N/A", None, S, "DS", "Kind of scan",
        permissible=("rotation", "grid", "energy", "time-resolved", "tomography", "step")),
    _pt("scan_start", "N/A", None, D, "DS", "Start of the scan"),
    _pt("sample_received", "N/A", None, D, "S", "When the sample arrived at the facility"),
    _pt("beamtime_allocated", "shifts", "eight-hour shifts", N, "I", "Beamtime allocated by "
        "the review panel", 1.0, 30.0),
    _pt("proposal_panel", "N/A", None, S, "I", "Review panel of the proposal",
        permissible=("Biology", "Chemistry", "Materials", "Physics", "Earth sciences",
                     "Engineering")),
    _pt("proposal_received", "N/A", None, D, "I", "When the proposal was submitted"),
)

# name, molecularFormula, safety information
SAMPLE_TYPES = (
    ("lysozyme", "C613H959N193O185S10", "Not hazardous"),
    ("thaumatin", "C1000H1539N275O306S17", "Not hazardous"),
    ("insulin", "C257H383N65O77S6", "Not hazardous"),
    ("proteinase K", "C1300H2000N350O400S8", "Enzyme: may cause sensitisation"),
    ("silicon", "Si", "Not hazardous"),
    ("calcite", "CaCO3", "Not hazardous"),
    ("lithium iron phosphate", "LiFePO4", "Irritant"),
    ("titanium dioxide", "TiO2", "Inhalation hazard as a powder"),
    ("methylammonium lead iodide", "CH6I3NPb", "Toxic: contains lead"),
    ("zeolite ZSM-5", "Na0.3H3.8[Al4.1Si91.9O192]", "Inhalation hazard as a powder"),
    ("cobalt ferrite", "CoFe2O4", "Harmful if swallowed"),
    ("hydroxyapatite", "Ca10(PO4)6(OH)2", "Not hazardous"),
    ("cement paste", "Ca3SiO5", "Irritant, alkaline"),
    ("bone tissue", "N/A", "Biological sample, fixed"),
    ("graphene oxide", "C140H42O20", "Not hazardous"),
    ("nickel superalloy", "Ni", "Not hazardous"),
)


@dataclass(frozen=True)
class Beamline:
    name: str
    full_name: str
    type: str
    technique: str
    description: str
    frame_format: str  # format of the per-frame files of a raw scan
    frames: tuple[int, int]  # files per raw scan, uniform range
    frame_seconds: int  # seconds between frames
    scan_params: tuple[str, ...]  # dataset parameter types of a raw scan, in pick order
    materials: tuple[str, ...]  # sample types measured here
    keywords: tuple[str, ...]
    titles: tuple[str, ...]  # "{m}" is a material
    panel: str
    start_year: int
    overrides: dict[str, tuple[float, float]] = field(default_factory=dict)  # value ranges


BEAMLINES = (
    Beamline("I03", "Macromolecular Crystallography", "MX", "macromolecular crystallography",
             "Tunable undulator beamline for high-throughput protein crystallography.",
             "cbf", (35, 100), 1,
             ("photon_energy", "wavelength", "detector_distance", "exposure_time",
              "temperature", "scan_type", "scan_start"),
             ("lysozyme", "thaumatin", "insulin", "proteinase K"),
             ("protein crystallography", "structural biology", "ligand binding",
              "drug discovery", "enzyme mechanism"),
             ("Crystal structure of {m} in complex with novel inhibitors",
              "Fragment screening against {m}", "Radiation damage in {m} crystals",
              "Room-temperature serial crystallography of {m}"),
             "Biology", 2009, {"temperature": (95.0, 110.0), "photon_energy": (6000.0, 18000.0)}),
    Beamline("I11", "High Resolution Powder Diffraction", "diffraction", "powder diffraction",
             "Powder diffraction with multi-analyser crystal and position-sensitive detectors.",
             "ascii", (35, 105), 30,
             ("photon_energy", "temperature", "pressure", "exposure_time", "scan_type",
              "scan_start"),
             ("calcite", "lithium iron phosphate", "zeolite ZSM-5", "cobalt ferrite",
              "titanium dioxide"),
             ("phase transition", "battery materials", "catalysis", "in situ", "crystal structure"),
             ("Phase transitions in {m} under operating conditions",
              "In situ diffraction of {m} during synthesis",
              "Thermal expansion of {m} from 80 K to 1200 K"),
             "Chemistry", 2008, {"photon_energy": (15000.0, 30000.0)}),
    Beamline("I13", "X-ray Imaging and Tomography", "imaging", "X-ray tomography",
             "Micro-tomography and coherent imaging beamline with a 250 m long hutch.",
             "tiff", (70, 160), 2,
             ("photon_energy", "voxel_size", "exposure_time", "temperature", "scan_type",
              "scan_start"),
             ("bone tissue", "cement paste", "nickel superalloy", "lithium iron phosphate"),
             ("tomography", "imaging", "porosity", "crack propagation", "biomaterials"),
             ("Micro-tomography of {m} under load",
              "Four-dimensional imaging of {m} during hydration",
              "Porosity and crack growth in {m}"),
             "Engineering", 2012, {"photon_energy": (8000.0, 30000.0)}),
    Beamline("I18", "Microfocus Spectroscopy", "spectroscopy", "X-ray absorption spectroscopy",
             "Microfocus X-ray fluorescence and absorption spectroscopy for heterogeneous samples.",
             "ascii", (25, 85), 20,
             ("photon_energy", "temperature", "exposure_time", "scan_type", "scan_start"),
             ("cobalt ferrite", "titanium dioxide", "methylammonium lead iodide", "calcite"),
             ("XANES", "EXAFS", "oxidation state", "environmental science", "speciation"),
             ("Speciation of trace metals in {m}", "Oxidation state mapping in {m}",
              "EXAFS of dopants in {m}"),
             "Earth sciences", 2010, {"photon_energy": (2000.0, 20000.0)}),
    Beamline("I22", "Small Angle Scattering and Diffraction", "SAXS",
             "small-angle X-ray scattering",
             "Simultaneous small- and wide-angle scattering for soft matter and biology.",
             "hdf5", (35, 95), 3,
             ("photon_energy", "wavelength", "detector_distance", "exposure_time",
              "temperature", "scan_type", "scan_start"),
             ("graphene oxide", "hydroxyapatite", "insulin", "zeolite ZSM-5"),
             ("soft matter", "self-assembly", "nanostructure", "SAXS", "WAXS"),
             ("Self-assembly of {m} in solution", "Nanostructure of {m} during drying",
              "Time-resolved SAXS of {m} formation"),
             "Materials", 2008, {"photon_energy": (7000.0, 20000.0)}),
    Beamline("B07", "Versatile Soft X-ray Beamline", "photoemission",
             "X-ray photoelectron spectroscopy",
             "Ambient-pressure photoemission and NEXAFS on surfaces and interfaces.",
             "nexus", (15, 65), 45,
             ("photon_energy", "pressure", "temperature", "scan_type", "scan_start"),
             ("silicon", "titanium dioxide", "graphene oxide", "nickel superalloy"),
             ("surface science", "XPS", "NEXAFS", "catalysis", "interfaces"),
             ("Ambient-pressure XPS of {m} surfaces", "Electronic structure of {m} interfaces",
              "Surface oxidation of {m}"),
             "Physics", 2017, {"photon_energy": (100.0, 2800.0), "pressure": (0.0, 1.0)}),
)

GIVEN_NAMES = (
    "Joe", "Ada", "Ben", "Chloe", "Daniel", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
    "Kavya", "Liam", "Maria", "Nikolai", "Olga", "Pedro", "Qing", "Rosa", "Sven", "Tariq",
    "Uma", "Victor", "Wen", "Ximena", "Yusuf", "Zoe", "Amara", "Bruno", "Carmen", "Dmitri",
    "Emma", "Felix", "Gita", "Hannah", "Ivan", "Julia", "Kenji", "Leila", "Mateo",
)
FAMILY_NAMES = (
    "Bloggs", "Lovelace", "Okafor", "Moreau", "Schmidt", "Rossi", "Haddad", "Hopper", "Tanaka",
    "Silva", "Berg", "Iyer", "Murphy", "Garcia", "Petrov", "Novak", "Costa", "Zhang", "Alvarez",
    "Lindqvist", "Rahman", "Patel", "Dubois", "Chen", "Herrera", "Demir", "Walsh", "Nwosu",
    "Fischer", "Romero", "Volkov", "Jensen", "Weber", "Sharma", "Cohen", "Kowalski", "Meyer",
    "Sato", "Nasser", "Ortiz",
)
INSTITUTIONS = (
    ("University of Lakeside", "lakeside.example.org"),
    ("Northfield Institute of Technology", "nit.example.org"),
    ("Institut Rhodanien de Physique", "irp.example.org"),
    ("Hanseatic University", "hanse-uni.example.org"),
    ("Kyoto Materials Laboratory", "kml.example.org"),
    ("Universidad del Sur", "usur.example.org"),
    ("Medway Biosciences Ltd", "medway-bio.example.org"),
    ("Baltic Energy Research Centre", "berc.example.org"),
)
STAFF_INSTITUTION = ("Lakeside Synchrotron Facility", "lsf.example.org")

TECHNIQUE_DESCRIPTIONS = {bl.technique: f"Technique used at {bl.name} ({bl.full_name})"
                          for bl in BEAMLINES}
