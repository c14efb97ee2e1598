"""Read Caffe's text `.prototxt` network descriptions, both file generations.

Why a small generic parser instead of the `protobuf` package: protobuf's text
parser needs the message schema, i.e. all of caffe.proto (well over a thousand
lines, with the V1 and V0 layer messages) compiled into this repo, only to learn
which names are messages, strings or enums. The text format itself is a tiny grammar
(`name: value`, `name { ... }`), and the builders need just a handful of
fields, so we parse into plain dicts and leave typing and Caffe's defaults to
`replication.caffe.params`, next to the code that uses them.

Every message becomes a dict: field name -> list of values (the text format may
repeat any field), in file order. Values are str (strings and enum identifiers),
int, float, bool or a nested dict of the same form.
"""

import re
from pathlib import Path

from replication.caffe.net import CaffeFormatError, Layer, Net
from replication.caffe.schema import V1_LAYER_TYPES
from replication.errors import ReplicationError

_TOKEN = re.compile(
    r"""
    (?P<space>[ \t\r\f\v]+)
  | (?P<newline>\n)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>-?(?:0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[fF]?)(?![\w.]))
  | (?P<ident>-?[A-Za-z_]\w*)
  | (?P<symbol>[{}<>\[\]:,;])
    """,
    re.VERBOSE,
)
_CLOSING = {"{": "}", "<": ">"}
_SIMPLE_ESCAPES = {
    "n": b"\n", "t": b"\t", "r": b"\r", "a": b"\a", "b": b"\b", "f": b"\f",
    "v": b"\v", "\\": b"\\", "'": b"'", '"': b'"', "?": b"?",
}
_ESCAPE = re.compile(r"\\(?:([0-7]{1,3})|x([0-9a-fA-F]{1,2})|(.))", re.DOTALL)


# V1LayerParameter.LayerType: the enum's names, as V1 text files write them, and its
# numbers (caffe.proto). The binary reader needs only the numbers, so the names live
# here, and schema.V1_LAYER_TYPES maps the numbers to current type strings.
_V1_ENUM = {
    "NONE": 0, "ACCURACY": 1, "BNLL": 2, "CONCAT": 3, "CONVOLUTION": 4, "DATA": 5,
    "DROPOUT": 6, "EUCLIDEAN_LOSS": 7, "FLATTEN": 8, "HDF5_DATA": 9, "HDF5_OUTPUT": 10,
    "IM2COL": 11, "IMAGE_DATA": 12, "INFOGAIN_LOSS": 13, "INNER_PRODUCT": 14, "LRN": 15,
    "MULTINOMIAL_LOGISTIC_LOSS": 16, "POOLING": 17, "RELU": 18, "SIGMOID": 19,
    "SOFTMAX": 20, "SOFTMAX_LOSS": 21, "SPLIT": 22, "TANH": 23, "WINDOW_DATA": 24,
    "ELTWISE": 25, "POWER": 26, "SIGMOID_CROSS_ENTROPY_LOSS": 27, "HINGE_LOSS": 28,
    "MEMORY_DATA": 29, "ARGMAX": 30, "THRESHOLD": 31, "DUMMY_DATA": 32, "SLICE": 33,
    "MVN": 34, "ABSVAL": 35, "SILENCE": 36, "CONTRASTIVE_LOSS": 37, "EXP": 38,
    "DECONVOLUTION": 39,
}


class _Message(dict):
    """A parsed message; remembers the line it starts on for error messages."""

    def __init__(self, line: int):
        super().__init__()
        self.line = line


def read_prototxt(path) -> Net:
    """The network described by a `.prototxt` file (current or V1 generation)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReplicationError(path, "file not found") from None
    except UnicodeDecodeError:
        raise CaffeFormatError(path, "not a text prototxt (not UTF-8 text)") from None
    return net_from_message(parse_text(text, path), path)


def parse_text(text: str, path=None) -> dict:
    """Protobuf text format -> nested dicts of lists (see the module docstring)."""
    return _Parser(_tokenize(text, path), path).message(end=None, line=1)


def net_from_message(message: dict, path=None) -> Net:
    """A parsed NetParameter -> Net, mapping V1 layer enums to current type strings."""
    if "layer" in message and "layers" in message:
        raise CaffeFormatError(path, "mixes current `layer` and V1 `layers` fields")
    generation = "V1" if "layers" in message else "current"
    layers = [
        _layer(m, path, v1=generation == "V1")
        for m in message.get("layers" if generation == "V1" else "layer", [])
    ]
    inputs = _header_inputs(message, path)
    for layer in layers:
        if layer.type == "Input":
            inputs.update(_input_layer_shapes(layer, path))
    return Net(name=_single_str(message, "name", path, default=""), layers=layers,
               inputs=inputs, generation=generation)


def _layer(message, path, v1: bool) -> Layer:
    if not isinstance(message, dict):
        raise CaffeFormatError(path, f"a layer must be a `{{ ... }}` block, got {message!r}")
    where = f"line {message.line}"
    name = _single_str(message, "name", path, default="")
    types = message.get("type", [])
    if v1:
        types = [_v1_type(t) for t in types]
        if None in types:
            raise CaffeFormatError(
                path, f"{where}: layer {name!r} has an unknown V1 type {message['type'][0]!r}"
            )
    if len(types) != 1 or not types[0] or not isinstance(types[0], str):
        raise CaffeFormatError(path, f"{where}: layer {name!r} needs one type, got {types}")
    type_ = types[0]
    return Layer(name=name, type=type_, bottoms=_strings(message, "bottom", path),
                 tops=_strings(message, "top", path), params=message)


def _v1_type(value) -> str | None:
    """A V1 LayerType enum value, by name or (legal in text format) by number."""
    number = _V1_ENUM.get(value) if isinstance(value, str) else value
    if not isinstance(number, int) or isinstance(number, bool):
        return None
    return V1_LAYER_TYPES.get(number)


def _header_inputs(message, path) -> dict[str, tuple[int, ...]]:
    """The deprecated net-level `input:` with `input_dim:` x4 or `input_shape {}` per input."""
    names = _strings(message, "input", path)
    dims = message.get("input_dim", [])
    shapes = message.get("input_shape", [])
    if not names:
        if dims or shapes:
            raise CaffeFormatError(path, "input_dim/input_shape given without `input:`")
        return {}
    if shapes:
        if len(shapes) != len(names) or dims:
            raise CaffeFormatError(path, f"{len(names)} inputs need {len(names)} input_shape blocks")
        return {n: _dims(s, path) for n, s in zip(names, shapes)}
    if len(dims) != 4 * len(names):
        raise CaffeFormatError(
            path, f"{len(names)} inputs need {4 * len(names)} input_dim values, got {len(dims)}"
        )
    _check_ints(dims, "input_dim", path)
    return {n: tuple(dims[4 * i : 4 * i + 4]) for i, n in enumerate(names)}


def _input_layer_shapes(layer: Layer, path) -> dict[str, tuple[int, ...]]:
    """Input layers give one shape per top, one shape shared by all tops, or none
    (Caffe then waits for the caller to set it: shape ())."""
    where = f"line {layer.params.line}: Input layer {layer.name!r}"
    blocks = layer.params.get("input_param", [])
    shapes = [_dims(s, path) for b in blocks for s in (b.get("shape", []) if isinstance(b, dict) else [b])]
    if len(shapes) <= 1:
        shapes = (shapes or [()]) * len(layer.tops)
    if not layer.tops or len(shapes) != len(layer.tops):
        raise CaffeFormatError(path, f"{where} has {len(layer.tops)} tops and {len(shapes)} shapes")
    return dict(zip(layer.tops, shapes))


def _dims(shape, path) -> tuple[int, ...]:
    if not isinstance(shape, dict):
        raise CaffeFormatError(path, f"a shape must be a `{{ dim: ... }}` block, got {shape!r}")
    dims = shape.get("dim", [])
    _check_ints(dims, f"line {shape.line}: dim", path)
    return tuple(dims)


def _check_ints(values, what, path):
    for v in values:
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise CaffeFormatError(path, f"{what} must be a non-negative integer, got {v!r}")


def _strings(message, field, path) -> list[str]:
    values = message.get(field, [])
    for v in values:
        if not isinstance(v, str):
            raise CaffeFormatError(path, f"line {message.line}: {field} must be a name, got {v!r}")
    return list(values)


def _single_str(message, field, path, default):
    values = _strings(message, field, path)
    if len(values) > 1:
        raise CaffeFormatError(path, f"line {message.line}: {field} given {len(values)} times")
    return values[0] if values else default


def _tokenize(text: str, path) -> list[tuple[str, str, int]]:
    tokens, line, pos = [], 1, 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise CaffeFormatError(path, f"line {line}: unexpected character {text[pos]!r}")
        kind, value = match.lastgroup, match.group()
        if kind == "newline":
            line += 1
        elif kind not in ("space", "comment"):
            tokens.append((kind, value, line))
        pos = match.end()
    return tokens


class _Parser:
    """Recursive descent over the token list: message := (name [':'] value [,;])*."""

    def __init__(self, tokens, path):
        self.tokens, self.path, self.pos = tokens, path, 0

    def message(self, end: str | None, line: int) -> _Message:
        fields = _Message(line)
        while True:
            kind, value, _ = self._peek()
            if kind is None:
                if end is not None:
                    raise CaffeFormatError(
                        self.path, f"line {line}: this block is never closed (missing '{end}')"
                    )
                return fields
            if kind == "symbol" and value == end:
                self.pos += 1
                return fields
            if kind != "ident" or value.startswith("-"):
                raise self._error(f"expected a field name, got {value!r}")
            self.pos += 1
            fields.setdefault(value, []).extend(self._field_values())
            if self._peek()[1] in (",", ";"):
                self.pos += 1

    def _field_values(self) -> list:
        colon = self._accept(":")
        kind, value, line = self._peek()
        if value in _CLOSING:
            self.pos += 1
            return [self.message(_CLOSING[value], line)]
        if not colon:
            raise self._error(f"expected ':' or '{{' after the field name, got {value!r}")
        if not self._accept("["):
            return [self._scalar()]
        values = []
        while not self._accept("]"):
            if values and not self._accept(","):
                raise self._error(f"expected ',' or ']' in a list, got {self._peek()[1]!r}")
            kind, value, line = self._peek()
            if value in _CLOSING:
                self.pos += 1
                values.append(self.message(_CLOSING[value], line))
            else:
                values.append(self._scalar())
        return values

    def _scalar(self):
        kind, value, line = self._peek()
        if kind == "string":
            parts = []
            while self._peek()[0] == "string":  # adjacent strings concatenate, as in C
                parts.append(self._unescape(self._peek()[1][1:-1]))
                self.pos += 1
            try:
                return b"".join(parts).decode("utf-8")
            except UnicodeDecodeError:
                raise CaffeFormatError(self.path, f"line {line}: string is not UTF-8") from None
        self.pos += 1
        if kind == "number":
            return _number(value)
        if kind == "ident":
            lowered = value.lower()
            if value in ("true", "True", "t"):
                return True
            if value in ("false", "False", "f"):
                return False
            if lowered.lstrip("-") in ("inf", "infinity", "nan"):
                return float(lowered)
            if not value.startswith("-"):
                return value  # an enum identifier, e.g. MAX or CONVOLUTION
        self.pos -= 1
        raise self._error(f"expected a value, got {value!r}")

    def _unescape(self, body: str) -> bytes:
        def replace(match):
            octal, hexa, char = match.groups()
            if octal:
                return bytes([int(octal, 8) & 0xFF])
            if hexa:
                return bytes([int(hexa, 16)])
            if char not in _SIMPLE_ESCAPES:
                raise self._error(f"unknown escape '\\{char}' in a string")
            return _SIMPLE_ESCAPES[char]

        out, last = [], 0
        for match in _ESCAPE.finditer(body):
            out += [body[last : match.start()].encode("utf-8"), replace(match)]
            last = match.end()
        out.append(body[last:].encode("utf-8"))
        return b"".join(out)

    def _peek(self):
        if self.pos < len(self.tokens):
            return self.tokens[self.pos]
        last_line = self.tokens[-1][2] if self.tokens else 1
        return None, None, last_line

    def _accept(self, symbol: str) -> bool:
        if self._peek()[1] == symbol and self._peek()[0] == "symbol":
            self.pos += 1
            return True
        return False

    def _error(self, message: str) -> CaffeFormatError:
        return CaffeFormatError(self.path, f"line {self._peek()[2]}: {message}")


def _number(text: str):
    if re.fullmatch(r"-?0[xX][0-9a-fA-F]+", text):
        return int(text, 16)
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    return float(text.rstrip("fF"))  # C-style float suffix: 1e-4f
