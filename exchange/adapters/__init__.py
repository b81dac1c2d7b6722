"""Partner adapters: plug-ins that deliver audiences to a partner's own API (SPEC §9).

``base`` holds the contract (declarations and hooks), ``driver`` the engine-side delivery loop,
``registry`` discovery through the ``exchange.adapters`` entry-point group; one module per partner.
"""
