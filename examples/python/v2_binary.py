"""losshub over the Open Inference Protocol (KServe V2), binary form, standard library only.

Tensors travel as raw little-endian bytes after a JSON header, as Triton's binary tensor data
extension has it: no numpy, no tritonclient, no per-number JSON.

    python3 v2_binary.py [URL]          # cross_entropy and its gradient (default http://localhost:8080)
    python3 v2_binary.py URL --json     # the same results as one JSON object (for tests)
"""

import json
import struct
import sys
import urllib.error
import urllib.request

# struct formats of the V2 datatypes losshub takes
FORMATS = {"FP32": "f", "FP64": "d", "INT32": "i", "INT64": "q"}


class V2Error(Exception):
    """A rejected request: HTTP status, losshub's error code and the protocol's error string."""

    def __init__(self, status, body):
        super().__init__(body["error"])
        self.status, self.code, self.error = status, body.get("code"), body["error"]


def infer(url, model, inputs, parameters=None):
    """Evaluates `model` (a loss) on `inputs`, a list of (name, datatype, shape, flat values).

    Every input is sent as bytes and every output asked back as bytes. Returns
    {output name: (shape, flat values)}: "loss" and, with parameters {"grad": True}, "grad_<input>".
    """
    header = {"parameters": dict(parameters or {}, binary_data_output=True), "inputs": []}
    tail = []
    for name, datatype, shape, values in inputs:
        raw = struct.pack("<%d%s" % (len(values), FORMATS[datatype]), *values)
        header["inputs"].append({"name": name, "datatype": datatype, "shape": shape, "parameters": {"binary_data_size": len(raw)}})
        tail.append(raw)
    head = json.dumps(header).encode("utf-8")
    request = urllib.request.Request(
        f"{url}/v2/models/{model}/infer", data=head + b"".join(tail), method="POST",
        # urllib would otherwise say application/x-www-form-urlencoded
        headers={"Content-Type": "application/octet-stream", "Inference-Header-Content-Length": str(len(head))})
    try:
        with urllib.request.urlopen(request) as response:
            body = response.read()
            length = int(response.headers.get("Inference-Header-Content-Length", len(body)))
    except urllib.error.HTTPError as err:
        raise V2Error(err.code, json.loads(err.read())) from None

    answer = json.loads(body[:length])
    outputs, offset = {}, length
    for out in answer["outputs"]:
        size = out.get("parameters", {}).get("binary_data_size")
        if size is None:
            values = out["data"]
        else:
            fmt = FORMATS[out["datatype"]]
            values = list(struct.unpack_from("<%d%s" % (size // struct.calcsize(fmt), fmt), body, offset))
            offset += size
        outputs[out["name"]] = (out["shape"], values)
    return outputs


def main():
    url = sys.argv[1] if len(sys.argv) > 1 and not sys.argv[1].startswith("--") else "http://localhost:8080"
    as_json = "--json" in sys.argv

    # F.cross_entropy(input, target) with input [[1, 2], [1, 3], [1, 3]] and target [0, 1, 1]
    out = infer(url, "cross_entropy", [
        ("input", "FP32", [3, 2], [1, 2, 1, 3, 1, 3]),
        ("target", "INT64", [3], [0, 1, 1]),
    ], parameters={"grad": True})
    (_, loss), (grad_shape, grad) = out["loss"], out["grad_input"]

    # a target of the wrong length: 400, with losshub's code and a message naming the input
    try:
        infer(url, "cross_entropy", [("input", "FP32", [3, 2], [1, 2, 1, 3, 1, 3]), ("target", "INT64", [4], [0, 1, 1, 0])])
        error = None
    except V2Error as err:
        error = {"status": err.status, "code": err.code, "error": err.error}

    if as_json:
        print(json.dumps({"loss": loss[0], "grad_input": {"shape": grad_shape, "data": grad}, "error": error}))
        return
    print("loss:", round(loss[0], 6))
    print("grad_input", grad_shape, [round(v, 6) for v in grad])
    print("error:", error)


if __name__ == "__main__":
    main()
