"""The engine library: the product. The CLI (and later the API service) are thin fronts over it.

Its surface mirrors Docker's nouns; stores open lazily so a command pays only
for what it touches.
"""

from __future__ import annotations

from functools import cached_property

from dockyard import config

TYPE_CHECKING = False  # importing typing costs ~20 ms of every command's start-up
if TYPE_CHECKING:
    import sqlite3
    from typing import Callable, Sequence, TypeVar

    from dockyard.containers.manager import Containers
    from dockyard.images.service import Images
    from dockyard.network.service import Networks
    from dockyard.pods.service import Pods
    from dockyard.store.content import ContentStore
    from dockyard.store.images import ImageStore
    from dockyard.store.layers import LayerStore
    from dockyard.volumes import Volumes

    T = TypeVar("T")


class Engine:
    def __init__(self, settings: config.Settings | None = None) -> None:
        self.settings = settings or config.load()
        self.root = self.settings.root

    @cached_property
    def db(self) -> "sqlite3.Connection":
        from dockyard.store import db

        import os

        os.makedirs(self.root, exist_ok=True)
        return db.connect(self.root)

    @cached_property
    def content(self) -> "ContentStore":
        from dockyard.store.content import ContentStore

        return ContentStore(self.root)

    @cached_property
    def layers(self) -> "LayerStore":
        from dockyard.store.layers import LayerStore

        return LayerStore(self.root, self.db)

    @cached_property
    def image_store(self) -> "ImageStore":
        from dockyard.store.images import ImageStore

        return ImageStore(self.db, self.content)

    @cached_property
    def images(self) -> "Images":
        from dockyard.images.service import Images

        return Images(self)

    @cached_property
    def containers(self) -> "Containers":
        from dockyard.containers.manager import Containers

        return Containers(self)

    @cached_property
    def networks(self) -> "Networks":
        from dockyard.network.service import Networks

        return Networks(self)

    @cached_property
    def volumes(self) -> "Volumes":
        from dockyard.volumes import Volumes

        return Volumes(self)

    @cached_property
    def pods(self) -> "Pods":
        from dockyard.pods.service import Pods

        return Pods(self)

    def close(self) -> None:
        if "db" in self.__dict__:
            self.db.close()


def at_once(engine: Engine, items: "Sequence[T]", action: "Callable[[Engine, T], object]") -> None:
    """``action(an engine, item)`` for every item at the same time, each thread on an Engine of
    its own (sqlite connections are per thread); the first error is raised once all are done.
    One item runs in the caller's thread on ``engine``. Compose and kube play start containers so."""
    if len(items) <= 1:
        for item in items:
            action(engine, item)
        return
    import threading

    errors: list[BaseException] = []

    def run(item: "T") -> None:
        own = Engine(engine.settings)
        try:
            action(own, item)
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            errors.append(e)
        finally:
            own.close()

    threads = [threading.Thread(target=run, args=(item,), name="at-once") for item in items]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
