"""Container image targets, declared in config: they depend on the targets whose artifacts they contain."""

from __future__ import annotations

from pathlib import Path

from polybuild.config import Config
from polybuild.workspace import BUILT_KINDS, Ref, Target


def discover(root: Path, config: Config, others: list[Target]) -> list[Target]:
    images = []
    for name, spec in config["images"].items():
        images.append(Target(
            id=f"image:{name}",
            name=name,
            kind="image",
            builder=None,  # image builds arrive with the container builder
            dir=root,
            manifest=config.file.path if config.file else root,
            info={"template": spec["template"], "vars": spec["vars"], "platforms": spec["platforms"]},
            refs=[Ref("name", a, f"{config.display}: [images.{name}].artifacts", kinds=BUILT_KINDS)
                  for a in spec["artifacts"]],
        ))
    return images
