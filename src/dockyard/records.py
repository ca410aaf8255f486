"""``@record``: the part of ``@dataclass`` the engine's plain data classes use, for the
modules on the ``run``/``exec`` start-up path.

``import dataclasses`` pulls in ``inspect`` (and with it ast, dis, tokenize), and each
decorated class then compiles generated code: together ~10-15 ms of every ``run``, more
than the container's own start. This builds ``__init__``, ``__repr__`` and ``__eq__``
(and ``__hash__``/immutability with ``frozen=True``) from the class's annotations
with plain closures instead. Type checkers see the real ``dataclass``.

Supported: fields in annotation order, defaults, ``field(default=..., default_factory=...,
repr=...)``, ``frozen``, and ``replace``. Not supported: inheritance of fields, ClassVar,
InitVar, ordering, ``__post_init__``.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from dataclasses import dataclass as record
    from dataclasses import field, replace
else:
    _NO_DEFAULT = object()

    class FrozenInstanceError(AttributeError):
        pass

    class _Field:
        __slots__ = ("default", "default_factory", "repr")

        def __init__(self, default: object, default_factory: object, repr: bool) -> None:
            self.default = default
            self.default_factory = default_factory
            self.repr = repr

    def field(*, default: object = _NO_DEFAULT, default_factory: object = None, repr: bool = True) -> object:
        return _Field(default, default_factory, repr)

    def record(cls: type | None = None, *, frozen: bool = False) -> object:
        if cls is None:
            return lambda c: _build(c, frozen)
        return _build(cls, frozen)

    def replace(obj: object, **changes: object) -> object:
        values = {name: getattr(obj, name) for name in obj.__record_fields__}
        values.update(changes)
        return type(obj)(**values)

    def _build(cls: type, frozen: bool) -> type:
        names = tuple(cls.__dict__.get("__annotations__", {}))
        defaults: dict = {}       # name -> value
        factories: dict = {}      # name -> callable
        shown = []
        for name in names:
            value = cls.__dict__.get(name, _NO_DEFAULT)
            show = True
            if isinstance(value, _Field):
                show = value.repr
                if value.default_factory is not None:
                    factories[name] = value.default_factory
                elif value.default is not _NO_DEFAULT:
                    defaults[name] = value.default
                value = defaults.get(name, _NO_DEFAULT)
                if value is _NO_DEFAULT:
                    delattr(cls, name)
                else:
                    setattr(cls, name, value)
            elif value is not _NO_DEFAULT:
                defaults[name] = value
            if show:
                shown.append(name)
        known = frozenset(names)
        set_attr = object.__setattr__

        ordered = {name: None for name in names}   # a template: keyword-built instances keep field order

        def __init__(self: object, *args: object, **kwargs: object) -> None:
            if not args:   # the common case (store rows): one dict update instead of a loop of checks
                if not kwargs.keys() <= known:
                    unknown = next(iter(kwargs.keys() - known))
                    raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {unknown!r}")
                values = dict(ordered)
                values.update(kwargs)
                if len(kwargs) < len(names):
                    for name in names:
                        if name not in kwargs:
                            if name in factories:
                                values[name] = factories[name]()
                            elif name in defaults:
                                values[name] = defaults[name]
                            else:
                                raise TypeError(f"{cls.__name__}() missing required argument: {name!r}")
                self.__dict__.update(values)
                return
            if len(args) > len(names):
                raise TypeError(f"{cls.__name__}() takes {len(names)} arguments, {len(args)} given")
            for key in kwargs:
                if key not in known:
                    raise TypeError(f"{cls.__name__}() got an unexpected keyword argument {key!r}")
            for i, name in enumerate(names):
                if i < len(args):
                    if name in kwargs:
                        raise TypeError(f"{cls.__name__}() got multiple values for argument {name!r}")
                    value = args[i]
                elif name in kwargs:
                    value = kwargs[name]
                elif name in factories:
                    value = factories[name]()
                elif name in defaults:
                    value = defaults[name]
                else:
                    raise TypeError(f"{cls.__name__}() missing required argument: {name!r}")
                set_attr(self, name, value)

        def __repr__(self: object) -> str:
            inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in shown)
            return f"{cls.__qualname__}({inner})"

        def _values(self: object) -> tuple:
            return tuple(getattr(self, name) for name in names)

        def __eq__(self: object, other: object) -> bool:
            if other.__class__ is not self.__class__:
                return NotImplemented
            return _values(self) == _values(other)

        cls.__init__ = __init__
        cls.__repr__ = __repr__
        cls.__eq__ = __eq__
        cls.__record_fields__ = names
        if frozen:
            def __setattr__(self: object, name: str, value: object) -> None:
                raise FrozenInstanceError(f"cannot assign to field {name!r}")

            def __delattr__(self: object, name: str) -> None:
                raise FrozenInstanceError(f"cannot delete field {name!r}")

            cls.__setattr__ = __setattr__
            cls.__delattr__ = __delattr__
            cls.__hash__ = lambda self: hash(_values(self))
        else:
            cls.__hash__ = None  # mutable and compared by value: unhashable, as dataclass makes it
        return cls
