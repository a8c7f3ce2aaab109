"""The clean photographs of the second OOD benchmark: real photos from Debian wallpaper packages.

FROZEN with the generators (see generators.py).  No other part of the project reads these
packages (the training and first OOD scenes come from scikit-image, scikit-learn and
matplotlib).  Only real photographs were kept after looking at every image of the packages:
renders, illustrations, gradients and textures (ukui-wallpapers, gnome-backgrounds, most of
plasma-workspace-wallpapers, three lomiri images) were left out.  The Debian package
`mate-backgrounds` is reserved for outside checks and must never appear here.

Licences are those of /usr/share/doc/<package>/copyright (lomiri: per file) and, for
plasma-workspace-wallpapers, of each wallpaper's metadata.json ("License": "LGPLv3").
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

# Package versions the list was made from (Debian bookworm); a file whose sha256 differs is an error.
PACKAGES = {
    "lomiri-wallpapers-16.04": "20.04.0-2",
    "lomiri-wallpapers-20.04": "20.04.0-2",
    "plasma-workspace-wallpapers": "4:5.27.5-2",
}
FORBIDDEN_PACKAGE = "mate-backgrounds"


@dataclass(frozen=True)
class Photo:
    name: str
    package: str
    path: str
    sha256: str
    author: str
    licence: str
    description: str


PHOTOS: tuple[Photo, ...] = (
    Photo("bridge", "lomiri-wallpapers-16.04", "/usr/share/backgrounds/Bridge_by_Sander_Klootwijk.jpg",
          "bd86b081f9975e2b83527f71e49b9271a8ab40885428395969d9f7d834d7f050",
          'Sander Klootwijk', "CC-BY-SA-4.0", "bridge cables over a tidal flat under a blue sky"),
    Photo("dragonfly", "lomiri-wallpapers-16.04", "/usr/share/backgrounds/Dragonfly_by_Bolly.jpg",
          "af5af17841009732def24b09bb1e669a1b09d2b4bdeee7812c371101c30d2bb3",
          'Bolly', "CC-BY-SA-4.0", "a dragonfly on a twig among leaves"),
    Photo("picture_0b", "lomiri-wallpapers-16.04", "/usr/share/backgrounds/Picture_0B_by_freespace.jpg",
          "c8c0ab18e48d9e0419fe42881112137f3afafc27dfddc29ec3a6d54c56d225ad",
          'Trevor "Freespace"', "CC-BY-4.0", "a halved fig in a red bowl on concrete"),
    Photo("picture_1a", "lomiri-wallpapers-16.04", "/usr/share/backgrounds/Picture_1A_by_freespace.jpg",
          "89e86af38d04daaef975665dc2127e9fa76f0fd68f4eea105a2d0ae3390b010b",
          'Trevor "Freespace"', "CC-BY-4.0", "paint brushes with coloured bristles"),
    Photo("wine", "lomiri-wallpapers-16.04", "/usr/share/backgrounds/Wine_by_Jakkub_Mede.jpg",
          "d2e96e6d4da40dd804b3d0ce295e94de04a2d7d9b6785d42cd9d92ba58bced74",
          'Jakub Mede', "CC-BY-4.0", "a room with a drum, a table and a wine bottle"),
    Photo("aitzgorri", "lomiri-wallpapers-16.04", "/usr/share/backgrounds/aitzgorri_by_Aitzol_Berasategi.jpg",
          "66268e7b48f8854d36a28765fac6e23ec1aee251daa6da1f64715f201020ad36",
          'Aitzol Berasategi', "CC-BY-4.0", "a mountain ridge over autumn trees and a meadow"),
    Photo("free", "lomiri-wallpapers-16.04", "/usr/share/backgrounds/free_by_Peter_Nerlich.jpg",
          "85a5453c2fed514c75973016f3d862aca62eb7ca087618822469274ac1092373",
          'Peter Nerlich', "CC-BY-SA-4.0", "a toy bird hanging under globe lamps"),
    Photo("friends", "lomiri-wallpapers-16.04", "/usr/share/backgrounds/friends_by_Aitzol_Berasategi.jpg",
          "cc40e313c74e421edffe3403def413c16878ce14661cce7ec5915baeab35538d",
          'Aitzol Berasategi', "CC-BY-4.0", "two spaniels looking out of a wooden house"),
    Photo("greentock", "lomiri-wallpapers-16.04", "/usr/share/backgrounds/greentock_by_Peter_Nerlich.jpg",
          "e7b20e2db9dcd6e2b278ca55873c2110b35d89cd38b04d0b18728726888e6889",
          'Peter Nerlich', "CC-BY-SA-4.0", "a lit wall clock close up"),
    Photo("life", "lomiri-wallpapers-16.04", "/usr/share/backgrounds/life_by_Aitzol_Berasategi.jpg",
          "4c119350ead80201fe256850c3d316309ddfb4bdf10b235ce982dcde0c667c05",
          'Aitzol Berasategi', "CC-BY-4.0", "a stream among mossy rocks in a forest"),
    Photo("picosdeeuropa", "lomiri-wallpapers-16.04", "/usr/share/backgrounds/picosdeeuropa_by_Aitzol_Berasategi.jpg",
          "414d0072b2f6f2c555deafeaef6e45c4fed6fa9ad26eba6560ca8803959cf97a",
          'Aitzol Berasategi', "CC-BY-4.0", "a path across a pasture below rocky peaks"),
    Photo("seeding", "lomiri-wallpapers-16.04", "/usr/share/backgrounds/seeding_by_Clements_Engelhardt.jpg",
          "a5634d1ab5e41a3568e92d4a894a500c92b891f9ff734e50bd224d6e185a605f",
          'Clemens Engelhardt', "CC0-1.0", "dandelion clocks in a backlit meadow"),
    Photo("sunset", "lomiri-wallpapers-16.04", "/usr/share/backgrounds/sunset_by_Aitzol_Berasategi.jpg",
          "474dab6a4b9f94dc76c29dfe30e9f5db4af0fd2e33fe5d695f8152b371efca18",
          'Aitzol Berasategi', "CC-BY-4.0", "the sun setting over a hilltop survey marker"),
    Photo("kleiber", "lomiri-wallpapers-20.04", "/usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg",
          "6572410c09f4492c74ccadde133565a14c0161617d5917d4c820c66d65a44ba7",
          'Lukas Baubkus', "CC-BY-SA-3.0", "a nuthatch on a tree trunk"),
    Photo("bythewater", "plasma-workspace-wallpapers", "/usr/share/wallpapers/BytheWater/contents/images/2560x1600.jpg",
          "c272434ef39f2abf1ed48a15a8910088020f3165329a5092f3940ec9464bc05f",
          'Maciej Wiklo', "LGPL-3", "wooden boards by a lake"),
    Photo("coldripple", "plasma-workspace-wallpapers", "/usr/share/wallpapers/ColdRipple/contents/images/2560x1600.jpg",
          "05bef6722fc0ed81292cceb3ed026c38d17e510f3c84be7d68610c2b1a723c3f",
          'Risto Saukonpaa', "LGPL-3", "a pier in fog, black and white"),
    Photo("colorfulcups", "plasma-workspace-wallpapers", "/usr/share/wallpapers/ColorfulCups/contents/images/2560x1600.jpg",
          "6e0f3a72feb5a4a9fec191b77e34874c3c69e2d93040deb3f07773e73385023d",
          'Dmitri Popov', "LGPL-3", "stacked coloured plastic cups"),
    Photo("darkesthour", "plasma-workspace-wallpapers", "/usr/share/wallpapers/DarkestHour/contents/images/2560x1600.jpg",
          "8e3703fae3a3c217b1fc2b399b706cd3720584268d071ba153e4809daa55f1ce",
          'Risto Saukonpaa', "LGPL-3", "a misty lake at dusk"),
    Photo("eveningglow", "plasma-workspace-wallpapers", "/usr/share/wallpapers/EveningGlow/contents/images/2560x1600.jpg",
          "586682dcb362b9f620068f10138f87d0d3649939aef238adc5807cb951976a7a",
          'Ian Hex', "LGPL-3", "rowing boats on a lake shore at sunset"),
    Photo("fallenleaf", "plasma-workspace-wallpapers", "/usr/share/wallpapers/FallenLeaf/contents/images/2560x1600.jpg",
          "95603a6560c7e8d50e0e03b3f4adbe39c5258c72528e74e4ecaea1daf4e499de",
          'Martin Klapetek', "LGPL-3", "fallen autumn leaves on the ground"),
    Photo("grey", "plasma-workspace-wallpapers", "/usr/share/wallpapers/Grey/contents/images/2560x1600.jpg",
          "88c31d8944b7e6935d1b9a296654c692f0772cb512491713eb30a972a604c0ed",
          'Sigi Sagi', "LGPL-3", "a woven facade, black and white"),
    Photo("kite", "plasma-workspace-wallpapers", "/usr/share/wallpapers/Kite/contents/images/2560x1600.jpg",
          "bdca288ce296a981e80659c021cf707caddc702c0c8d4247e60bd618476d47f8",
          'Risto Saukonpaa', "LGPL-3", "a kite in a blue sky with clouds"),
    Photo("onestandsout", "plasma-workspace-wallpapers", "/usr/share/wallpapers/OneStandsOut/contents/images/2560x1600.jpg",
          "cb507baf1dafdcae362264f3aba9483ed4be5f6c9fdd770f0ec0920c6d9e80fd",
          'Risto Saukonpaa', "LGPL-3", "moss seen from above"),
    Photo("path", "plasma-workspace-wallpapers", "/usr/share/wallpapers/Path/contents/images/2560x1600.jpg",
          "7477457d7f17b736259f1b021864778ad4ba802cf3214e6728181ff29126bba8",
          'Risto Saukonpaa', "LGPL-3", "a path through a pine forest"),
    Photo("summer_1am", "plasma-workspace-wallpapers", "/usr/share/wallpapers/summer_1am/contents/images/2560x1600.jpg",
          "c868b50789591dd42910153c768053f1ba0a98cb36bbfc2b7a96a1045d0477f8",
          'Risto Saukonpaa', "LGPL-3", "a still lake under a violet night sky"),
)


class PhotoSourceError(RuntimeError):
    """A source photo is missing or is not the file the benchmark was frozen with."""


def install_hint(packages) -> str:
    names = " ".join(sorted(set(packages)))
    return f"apt-get update && apt-get install -y {names}   (or: make ood-photos)"


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_sources(photos=PHOTOS) -> None:
    """Every photo present and byte-identical to the frozen list; else one error naming the packages."""
    missing = [p for p in photos if not Path(p.path).is_file()]
    if missing:
        raise PhotoSourceError(
            f"{len(missing)} source photo(s) of the second OOD benchmark are missing, e.g. {missing[0].path}; "
            f"they come from the Debian package(s) {sorted({p.package for p in missing})}: "
            f"{install_hint(p.package for p in missing)}")
    for photo in photos:
        if FORBIDDEN_PACKAGE in photo.path or photo.package == FORBIDDEN_PACKAGE:
            raise PhotoSourceError(f"{photo.path}: images of {FORBIDDEN_PACKAGE} are reserved for outside checks")
        actual = sha256_of(photo.path)
        if actual != photo.sha256:
            raise PhotoSourceError(
                f"{photo.path} (package {photo.package}) has sha256 {actual}, the frozen list has {photo.sha256}; "
                f"the benchmark was frozen with {photo.package} {PACKAGES[photo.package]}")
