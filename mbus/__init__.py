"""OMS / EN 13757 protocol stack on plain bytes (no numpy), shared by the receiver and the TX path.

Entry points: :func:`mbus.telegram.decode` (bytes in, :class:`mbus.telegram.Telegram` out) and
:func:`mbus.telegram.encode` (the reverse, including encryption and MACs).
"""
