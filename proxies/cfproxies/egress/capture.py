"""The capture addon: tunnel untouched when off, record every flow when on.

The decision to intercept is taken per TLS connection in `tls_clienthello`
from the state at that moment, so toggling capture changes new connections
and leaves open ones as they are (a tunnelled connection cannot be opened up
mid-stream). Records are written by the session alive when a flow ends: a
flow that outlives `capture off` is not written, its key being gone.
"""

from __future__ import annotations

import logging
import time

from mitmproxy import http, tls

from cfproxies.egress.flowrecord import TEE_KEY, WS_KEY, BodyTee, WsLog, flow_record
from cfproxies.egress.metrics_page import OWN_FLOW
from cfproxies.egress.state import EgressState

log = logging.getLogger("cf-egress")


class Capture:
    def __init__(self, state: EgressState) -> None:
        self.state = state

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        data.ignore_connection = self.state.session is None

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response is None:
            return
        if flow.response.raw_content is not None:
            # An answer made here (a refusal): whole already, and mitmproxy
            # sends it without streaming, so a tee would see no byte of it.
            return
        if self.state.session is None:
            flow.response.stream = True  # pass through, never buffer
            return
        tee = BodyTee(self.state.config.body_cap)
        flow.metadata[TEE_KEY] = tee
        flow.response.stream = tee

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.websocket is not None:
            return  # written whole at websocket_end
        self._write(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._write(flow)

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        assert flow.websocket is not None
        # mitmproxy keeps every message of a flow in memory; take it out
        # (the layer still sends it) and keep a capped copy only if capturing.
        msg = flow.websocket.messages.pop()
        if self.state.session is None:
            return
        ws = flow.metadata.get(WS_KEY)
        if ws is None:
            ws = flow.metadata[WS_KEY] = WsLog(self.state.config.ws_cap)
        ws.add(msg.from_client, msg.is_text, msg.content, msg.timestamp or time.time())

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        self._write(flow)

    def _write(self, flow: http.HTTPFlow) -> None:
        session = self.state.session
        if session is None or flow.metadata.get(OWN_FLOW):  # a scrape of /metrics
            return
        try:
            record = flow_record(flow, session.bot, session.key_id, self.state.config.body_cap)
            session.write(record)
        except OSError as exc:
            log.error("cannot append to the capture log: %s", exc)
