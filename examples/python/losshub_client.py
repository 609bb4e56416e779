"""A small losshub client for Python: numpy arrays in, numpy arrays out.

Tensors travel as typed base64 (little-endian bytes), losshub's fast path: no per-number JSON.
Needs numpy and requests (Debian: python3-numpy python3-requests).

    python3 losshub_client.py [URL]          # a short walkthrough against URL (default http://localhost:8080)
    python3 losshub_client.py URL --json     # the same results as one JSON object (for tests)

    from losshub_client import Losshub
    hub = Losshub("http://localhost:8080")
    r = hub.loss("cross_entropy", input=np.array([[1, 2], [1, 3], [1, 3]], np.float32),
                 target=np.array([0, 1, 1]), grad=True)
    r.loss, r.grad["input"]
"""

import base64
import json
import sys
from dataclasses import dataclass, field

import numpy as np
import requests

# losshub's dtypes and their little-endian numpy equivalents
DTYPES = {"float32": "<f4", "float64": "<f8", "int32": "<i4", "int64": "<i8"}
NON_FINITE = {"NaN": np.nan, "Infinity": np.inf, "-Infinity": -np.inf}


def encode(array) -> dict:
    """A numpy array (or anything np.asarray takes) as a typed base64 tensor.

    float64 stays float64 (and makes the whole call float64), other floats become float32,
    integers and booleans int64 (class indices).
    """
    a = np.asarray(array)
    if a.dtype.kind == "f":
        dtype = "float64" if a.dtype == np.float64 else "float32"
    elif a.dtype.kind in "iub":
        dtype = "int32" if a.dtype == np.int32 else "int64"
    else:
        raise TypeError(f"cannot send a {a.dtype} array as a tensor")
    raw = np.ascontiguousarray(a, dtype=DTYPES[dtype]).tobytes()
    return {"dtype": dtype, "shape": list(a.shape), "data": base64.b64encode(raw).decode("ascii")}


def decode(tensor) -> np.ndarray:
    """A response tensor in any of the three forms as a numpy array (0-d for a scalar)."""
    if isinstance(tensor, dict):
        dtype = np.dtype(DTYPES[tensor["dtype"]])
        data = tensor["data"]
        if isinstance(data, str):
            flat = np.frombuffer(base64.b64decode(data), dtype=dtype)
        else:
            flat = np.array([NON_FINITE.get(v, v) if isinstance(v, str) else v for v in data], dtype=dtype)
        return flat.reshape(tensor["shape"]).astype(dtype.newbyteorder("="))

    def finite(v):
        return [finite(x) for x in v] if isinstance(v, list) else NON_FINITE.get(v, v)

    return np.array(finite(tensor), dtype=np.float64)


class LosshubError(Exception):
    """A rejected call: the HTTP status, losshub's error code and its message."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass
class LossResult:
    loss: np.ndarray
    grad: dict = field(default_factory=dict)


class Losshub:
    def __init__(self, url: str = "http://localhost:8080", timeout: float = 30.0, session=None):
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.session = session or requests.Session()

    def catalog(self) -> list:
        """Every loss with its arguments, options, defaults and reference."""
        return self._call("GET", "/loss")["losses"]

    def loss(self, name: str, **arguments) -> LossResult:
        """Evaluates loss `name`. numpy arrays are sent as base64 tensors; options (numbers,
        strings, booleans, `grad`, `reduction`) and plain lists are sent as they are."""
        body = {k: encode(v) if isinstance(v, np.ndarray) else v for k, v in arguments.items()}
        out = self._call("POST", f"/loss/{name}", body)
        return LossResult(decode(out["loss"]), {k: decode(v) for k, v in out.get("grad", {}).items()})

    def _call(self, method: str, path: str, body=None):
        r = self.session.request(method, self.url + path, json=body, timeout=self.timeout)
        if r.status_code >= 400:
            try:
                e = r.json()
            except ValueError:
                e = {"code": "HTTP_ERROR", "message": r.text}
            raise LosshubError(r.status_code, e.get("code", "HTTP_ERROR"), e.get("message", ""))
        return r.json()


def walkthrough(url: str) -> dict:
    """The calls of the walkthrough, as plain JSON-able values."""
    hub = Losshub(url)
    out = {"catalog": [e["name"] for e in hub.catalog()]}

    logits = np.array([[1, 2], [1, 3], [1, 3]], dtype=np.float32)
    target = np.array([0, 1, 1])  # int64: class indices
    r = hub.loss("cross_entropy", input=logits, target=target, grad=True)
    out["cross_entropy"] = {"loss": float(r.loss), "dtype": str(r.loss.dtype), "grad": r.grad["input"].tolist()}

    # float64 in, float64 computation and result
    r = hub.loss("cross_entropy", input=logits.astype(np.float64), target=target)
    out["cross_entropy_float64"] = {"loss": float(r.loss), "dtype": str(r.loss.dtype)}

    # reduction "none" with an upstream gradient: the vector-Jacobian product
    r = hub.loss("mse", input=np.array([0.5, 2.0, -1.0], np.float32), target=np.zeros(3, np.float32),
                 reduction="none", grad=True, grad_output=np.array([1.0, 0.5, 2.0], np.float32))
    out["mse_none"] = {"loss": r.loss.tolist(), "grad": r.grad["input"].tolist()}

    try:
        hub.loss("cross_entropy", input=logits, target=np.array([0, 1, 1, 0]))
        out["error"] = None
    except LosshubError as e:
        out["error"] = {"status": e.status, "code": e.code, "message": e.message}

    # what encode() sends, for checking the byte order from another language
    out["encoded"] = encode(np.array([[1.5, -2.0], [np.nan, np.inf]], np.float32))
    return out


def main(argv) -> int:
    args = [a for a in argv[1:] if not a.startswith("--")]
    url = args[0] if args else "http://localhost:8080"
    result = walkthrough(url)
    if "--json" in argv:
        print(json.dumps(result))
        return 0
    print(f"{len(result['catalog'])} losses: {', '.join(result['catalog'])}")
    print("cross_entropy:", result["cross_entropy"])
    print("cross_entropy in float64:", result["cross_entropy_float64"])
    print("mse, reduction none, grad_output:", result["mse_none"])
    print("rejected:", result["error"])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
