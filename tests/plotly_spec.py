"""Reading the plotly figures an AppTest run drew: the data on the charts, as plain lists."""
import base64
import json

import numpy as np


def decode(value):
    """Plotly's JSON carries numpy arrays as {"dtype", "bdata" (base64), "shape"}: back to lists."""
    if isinstance(value, dict):
        if "bdata" in value and "dtype" in value:
            a = np.frombuffer(base64.b64decode(value["bdata"]), dtype=value["dtype"])
            if "shape" in value:
                a = a.reshape([int(n) for n in str(value["shape"]).split(",")])
            return a.tolist()
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def charts(at) -> list[dict]:
    return [decode(json.loads(el.proto.spec)) for el in at.get("plotly_chart")]


def traces(spec: dict, name_prefix: str) -> list[dict]:
    return [t for t in spec["data"] if str(t.get("name", "")).startswith(name_prefix)]
