"""The Durable Object namespace binding and its stubs (`fetch` and RPC).

Arguments and results cross the stub by structured clone, so neither side can mutate the other's
objects.  Built-in exception types raised in the object reach the caller with their type and
message; other exception classes arrive as a generic `JsException` with the message, as in
production.
"""

from __future__ import annotations

import asyncio
import builtins
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import values
from ..errors import JsException, JsTypeError
from ..http import Request, Response
from ..objects import to_js_object
from .ids import DurableObjectId, id_from_name, id_from_string, namespace_key, new_unique_id

if TYPE_CHECKING:
    from ..config import DurableObjectBindingConfig
    from .migrations import ClassInfo
    from .service import DurableObjectsService

__all__ = ["Namespace", "DurableObjectNamespace", "DurableObjectStub"]

WRONG_NAMESPACE = "The Durable Object ID passed to get() is not for this namespace."
NO_FETCH = "Handler does not export a fetch() function."


class Namespace:
    """A class's objects: where their files live and how to build their ids."""

    def __init__(self, service: DurableObjectsService, binding: DurableObjectBindingConfig, info: ClassInfo) -> None:
        self.service = service
        self.binding = binding
        self.info = info
        self.key = namespace_key(service.host.config.name, info.key_name)
        self.directory: Path = service.do_dir / info.key_name

    def resolve_class(self) -> type:
        cls = self.service.host.worker_class(self.info.name)
        if cls is None:
            raise JsTypeError(f"Durable Object class {self.info.name!r} is not exported by the worker's main module.")
        return cls


class DurableObjectNamespace:
    """The `env.<BINDING>` of a Durable Object class: `idFromName`, `newUniqueId`, `idFromString`,
    `get`, `getByName`."""

    def __init__(self, namespace: Namespace) -> None:
        self._ns = namespace

    def idFromName(self, name: str) -> DurableObjectId:
        return id_from_name(self._ns.key, name)

    def newUniqueId(self, jurisdiction: str | None = None, **_options: Any) -> DurableObjectId:
        return new_unique_id(self._ns.key)

    def idFromString(self, value: str) -> DurableObjectId:
        return id_from_string(self._ns.key, value)

    def get(self, object_id: DurableObjectId, **_options: Any) -> DurableObjectStub:
        if not isinstance(object_id, DurableObjectId):
            raise JsTypeError(f"get() takes a DurableObjectId, not {type(object_id).__name__}.")
        if object_id.namespace_key != self._ns.key:
            raise JsTypeError(WRONG_NAMESPACE)
        return DurableObjectStub(self._ns, object_id)

    def getByName(self, name: str, **options: Any) -> DurableObjectStub:
        return self.get(self.idFromName(name), **options)

    def jurisdiction(self, _name: str) -> DurableObjectNamespace:
        return self

    def __repr__(self) -> str:
        return f"<DurableObjectNamespace {self._ns.info.name}>"


_BUILTIN_ERRORS = {name: getattr(builtins, name) for name in dir(builtins)
                   if isinstance(getattr(builtins, name), type) and issubclass(getattr(builtins, name), Exception)}


def _translate(error: BaseException) -> BaseException:
    """What the caller of a stub sees for an error raised inside the object."""
    if isinstance(error, JsException):
        return error
    cls = type(error)
    if _BUILTIN_ERRORS.get(cls.__name__) is cls:
        try:
            copy = cls(*error.args)
        except Exception:  # noqa: BLE001 - exotic constructor signatures
            copy = cls(str(error))
        copy.remote = True  # thrown by the object's own code
        return copy
    return JsException(str(error), remote=True)


class DurableObjectStub:
    """A client for one object: `await stub.fetch(...)`, and `await stub.anyPublicMethod(...)` over RPC."""

    def __init__(self, namespace: Namespace, object_id: DurableObjectId) -> None:
        self._ns = namespace
        self.id = object_id
        self.name = object_id.name

    def _handle(self):
        return self._ns.service.handle(self._ns, self.id)

    def fetch(self, input: str | Request, **init: Any) -> asyncio.Task:
        """`stub.fetch(...)`: the request is sent when called (not when awaited), as in workerd."""
        return asyncio.ensure_future(self._fetch(input, **init))

    async def _fetch(self, input: str | Request, **init: Any) -> Response:
        request = input if isinstance(input, Request) and not init else Request(input, **init)
        # The object gets its own copy of the request (its body is read here, once).
        body = await request.bytes() if request.body is not None else None
        copy = Request(request.url, method=request.method, headers=request.headers, body=body, cf=dict(request.cf or {}))

        def build(instance):
            handler = getattr(instance.obj, "fetch", None)
            if handler is None:
                raise JsTypeError(NO_FETCH)
            return handler, (copy,)

        try:
            response = await self._handle().call("fetch", build)
        except Exception as error:  # noqa: BLE001
            raise _translate(error) from None
        if not isinstance(response, Response):
            raise JsTypeError("The Durable Object's fetch() did not return a Response.")
        return response

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)

        def call(*args: Any, **kwargs: Any) -> asyncio.Task:
            # Arguments are copied and the call is sent now, so calls on a stub arrive in the order
            # they were made (E-order) even if awaited in another order.
            try:
                cloned_args = values.clone(list(args))
                cloned_kwargs = values.clone(dict(kwargs))
            except values.DataCloneError as error:
                failed = asyncio.get_running_loop().create_future()
                failed.set_exception(error)
                return failed
            return asyncio.ensure_future(invoke(cloned_args, cloned_kwargs))

        async def invoke(cloned_args: list, cloned_kwargs: dict) -> Any:

            def build_with_kwargs(instance):
                method = instance.method(name)
                return (lambda *a: method(*a, **cloned_kwargs)), tuple(cloned_args)

            try:
                result = await self._handle().call(name, build_with_kwargs)
            except Exception as error:  # noqa: BLE001
                raise _translate(error) from None
            try:
                return to_js_object(values.clone(result))
            except values.DataCloneError as e:
                raise JsTypeError(f"The return value of {name}() could not be cloned: {e}") from None

        call.__name__ = name
        return call

    def __repr__(self) -> str:
        return f"<DurableObjectStub {self._ns.info.name} {self.id.toString()[:12]}…>"
