"""The WhatsApp channel: the WhatsApp Cloud API over plain httpx, with signed webhooks.

```mermaid
sequenceDiagram
    participant M as Meta
    participant W as transport: /whatsapp/webhook
    participant E as Engine
    participant O as Outbox sender
    participant G as Graph API
    M->>W: POST (X-Hub-Signature-256)
    W->>W: HMAC of the raw body, else 401/403
    W->>E: store_raw(wamid, message) for each message (inbound: payload -> event)
    W->>E: record_statuses(statuses[]) (inbound: receipts)
    W-->>M: 200
    W->>E: handle(event) in a background task
    W->>G: mark as read (best effort)
    O->>G: outbound: text / buttons / list / media, or a template outside 24 h
    O->>G: media: upload a file once, reuse its media id
```

One module per concern:

- channel.py: `WhatsAppChannel`, the ChannelAdapter lifecycle, composed from the parts below;
- transport.py: the webhook routes (handshake, signature, capped body, inbox, background);
- inbound.py: Cloud API messages -> engine events; delivery receipts -> outbox updates;
- outbound.py: sending, the 24-hour window decision, pacing;
- shapes.py / templates.py: the JSON bodies we send (pure functions);
- media.py: uploads of outgoing files, downloads of incoming media;
- errors.py: Graph error codes -> the engine's send errors;
- payloads.py: the pydantic models of what Meta sends us.

The adapter is thin: it translates payloads to engine events and engine messages to Cloud API
bodies, and knows the platform's limits and error codes. It makes no business decision and
never queries the database itself. Settings and the evidence store come from the composition
root (bot/app.py).
"""

from bot.channels.whatsapp.channel import WhatsAppChannel
from bot.channels.whatsapp.errors import OutsideWindow
from bot.channels.whatsapp.inbound import to_event
from bot.channels.whatsapp.transport import WEBHOOK_PATH

__all__ = ["WEBHOOK_PATH", "OutsideWindow", "WhatsAppChannel", "to_event"]
