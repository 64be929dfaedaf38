from components.edge_pusher.component import EdgePusher  # noqa: F401
