"""Container image targets, declared in config: they depend on the targets whose artifacts they contain."""

from __future__ import annotations

from pathlib import Path

from polybuild.config.model import Config
from polybuild.workspace import BUILT_KINDS, Ref, Target
from polybuild.workspace.targetinfo import ImageInfo


def discover(root: Path, config: Config, others: list[Target]) -> list[Target]:
    images = []
    for name, spec in config["images"].items():
        template = spec["template"]
        # Inputs: the template's directory (stage templates it may include) and the extra context files.
        inputs = [f"{template.rpartition('/')[0]}/**" if "/" in template else template] if template else []
        images.append(Target(
            id=f"image:{name}",
            name=name,
            kind="image",
            builder="dockerfile" if template else "assemble",
            dir=root,
            manifest=config.file.path if config.file else root,
            info=ImageInfo(spec=spec, inputs=inputs + spec["files"], engine=config["container"]["engine"]),
            refs=[Ref("name", a, f"{config.display}: [images.{name}].artifacts", kinds=BUILT_KINDS)
                  for a in spec["artifacts"]],
        ))
    return images
