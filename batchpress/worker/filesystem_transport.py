"""kombu's ``filesystem://`` transport, with messages that appear whole and no warning about a missing host.

kombu creates the message file and only then locks and writes it, so a polling worker can open it empty or half
written and die on a JSONDecodeError (seen under load). Here each message is written under a temporary name the
consumer ignores, then renamed into place, which is atomic on one filesystem.
"""

from __future__ import annotations

import os
import uuid
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue: Any, message: Any, **kwargs: Any) -> Any:  # type: ignore[override]  # kombu's own signature
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = os.path.join(self.data_folder_out, f".partial-{uuid.uuid4().hex}")
        try:
            with open(partial, "wb") as handle:
                handle.write(dumps(message).encode())  # type: ignore[no-untyped-call]  # kombu's own JSON
            os.replace(partial, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel

    @property
    def default_connection_params(self) -> dict[str, Any]:
        """None: the broker is a folder, not a host, so kombu has no default host to warn that it fell back to
        ("No hostname was supplied") on every connection."""
        return {}
