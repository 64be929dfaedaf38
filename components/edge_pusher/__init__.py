"""The EdgePusher: int8 TFLite Micro bundles for microcontrollers.

Lazy (PEP 562): `imagepipe edge device-check` reads bundles and runs compilers, and must not import
TFX and TensorFlow to do so.
"""


def __getattr__(name: str):
    if name == "EdgePusher":
        from components.edge_pusher.component import EdgePusher

        return EdgePusher
    raise AttributeError(f"module 'components.edge_pusher' has no attribute {name!r}")
