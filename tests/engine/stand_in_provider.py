"""A stand-in for the ``random`` and ``command`` resource providers, served to the real Pulumi engine.

The module proxy serves no version of pulumi-random's or pulumi-command's provider modules, so neither binary
can be built here. The engine still needs a provider process for every resource type the program declares:
this one speaks the engine's plugin protocol (print the port, serve ``ResourceProvider`` over gRPC) and
implements only what the program uses, with the providers' semantics where the engine can see them:

- random ``RandomPassword``/``RandomBytes``/``RandomString``: a value generated once at create, kept until an
  input changes, and any input change replaces the resource (as the Terraform provider marks every input
  ForceNew);
- ``command:local:Command``: planned only. The engine tests never apply a stack that runs a local command
  (only the ``local`` stack has them, and it is previewed), so ``Create`` refuses rather than pretend.

Run as ``python stand_in_provider.py <random|command> <engine address>``; the test writes a
``pulumi-resource-<name>`` script around it into a folder named in the project's ``plugins:`` block.
"""

from __future__ import annotations

import base64
import secrets
import string
import sys
from concurrent import futures
from typing import Any

import grpc
from google.protobuf import empty_pb2, json_format, struct_pb2
from pulumi.runtime.proto import plugin_pb2, provider_pb2, provider_pb2_grpc

VERSION = "0.0.0-stand-in"


def _plain(message: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(message)


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    result.update(value)
    return result


def _random_outputs(token: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """Outputs the real provider computes, for the properties the program reads."""
    length = int(inputs.get("length", 16))
    if token == "random:index/randomBytes:RandomBytes":
        raw = secrets.token_bytes(length)
        return {"base64": base64.b64encode(raw).decode(), "hex": raw.hex()}
    alphabet = string.ascii_letters + string.digits
    if inputs.get("special", True) and token != "random:index/randomString:RandomString":
        alphabet += inputs.get("overrideSpecial") or "!@#$%&*()-_=+[]{}<>:?"
    result = "".join(secrets.choice(alphabet) for _ in range(length))
    if token == "random:index/randomPassword:RandomPassword":
        return {"result": result, "bcryptHash": ""}
    return {"result": result}


class StandInProvider(provider_pb2_grpc.ResourceProviderServicer):
    """The ``ResourceProvider`` calls the engine makes for plain custom resources."""

    def __init__(self, package: str) -> None:
        self.package = package

    def GetPluginInfo(self, request: Any, context: Any) -> Any:  # gRPC method name
        return plugin_pb2.PluginInfo(version=VERSION)

    def CheckConfig(self, request: Any, context: Any) -> Any:
        return provider_pb2.CheckResponse(inputs=request.news)

    def DiffConfig(self, request: Any, context: Any) -> Any:
        return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE)

    def Configure(self, request: Any, context: Any) -> Any:
        # No preview support: the engine then plans creates without calling Create, outputs unknown.
        return provider_pb2.ConfigureResponse(acceptSecrets=True, acceptResources=True, supportsPreview=False)

    def Check(self, request: Any, context: Any) -> Any:
        return provider_pb2.CheckResponse(inputs=request.news)

    def Diff(self, request: Any, context: Any) -> Any:
        olds, news = _plain(request.olds), _plain(request.news)
        changed = sorted(key for key in set(news) | set(olds) if key in news and news[key] != olds.get(key))
        changed += sorted(key for key in olds_inputs_removed(request, news))
        if not changed:
            return provider_pb2.DiffResponse(changes=provider_pb2.DiffResponse.DIFF_NONE)
        return provider_pb2.DiffResponse(
            changes=provider_pb2.DiffResponse.DIFF_SOME,
            diffs=changed,
            replaces=changed if self.package == "random" else [],
            deleteBeforeReplace=False,
        )

    def Create(self, request: Any, context: Any) -> Any:
        if self.package != "random":
            context.abort(grpc.StatusCode.UNIMPLEMENTED, f"the stand-in {self.package} provider only plans")
        token = request.urn.split("::")[2].split("$")[-1]
        inputs = _plain(request.properties)
        outputs = inputs | _random_outputs(token, inputs)
        return provider_pb2.CreateResponse(id=secrets.token_hex(8), properties=_struct(outputs))

    def Read(self, request: Any, context: Any) -> Any:
        return provider_pb2.ReadResponse(id=request.id, properties=request.properties, inputs=request.inputs)

    def Update(self, request: Any, context: Any) -> Any:
        return provider_pb2.UpdateResponse(properties=_struct(_plain(request.olds) | _plain(request.news)))

    def Delete(self, request: Any, context: Any) -> Any:
        return empty_pb2.Empty()

    def Cancel(self, request: Any, context: Any) -> Any:
        return empty_pb2.Empty()


def olds_inputs_removed(request: Any, news: dict[str, Any]) -> list[str]:
    """Inputs the previous run set and this one drops (old inputs are sent separately from old outputs)."""
    old_inputs = _plain(request.old_inputs) if request.HasField("old_inputs") else {}
    return [key for key in old_inputs if key not in news]


def main() -> None:
    package = sys.argv[1]
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    provider_pb2_grpc.add_ResourceProviderServicer_to_server(StandInProvider(package), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
