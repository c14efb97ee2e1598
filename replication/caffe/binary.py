"""Read and write Caffe's binary weight files (.caffemodel) without Caffe installed.

A .caffemodel is one protobuf `NetParameter` message. It is decoded here by a small
reader of the protobuf wire format rather than by the protobuf package: the package
would hold the file's bytes, the parsed messages with every float in their repeated
fields, and then the numpy copies all at once (three times the 233 MB of AlexNet, and
far more if the floats pass through Python objects). Instead the file is memory-mapped,
each blob's packed floats become one numpy array straight from the mapped bytes, and the
mapped pages are released as soon as they are copied, so reading needs about the size of
the arrays themselves.

Both generations of the format are read: the current one (`layer` field, type strings,
N-D BlobShape) and the 2014 "V1" one (`layers` field, LayerType enum numbers, legacy
num/channels/height/width blob dimensions). Blobs are returned in the current
generation's shapes, whatever the file stored (see `_current_shape`).
"""

import math
import mmap
from pathlib import Path

import numpy as np

from replication.caffe.net import CaffeFormatError, Layer, Net
from replication.caffe.schema import LEGACY_DIMS, MESSAGES, V1_LAYER_NUMBERS, V1_LAYER_TYPES, Field
from replication.files import atomic_output

# Wire types of the protobuf encoding (3 and 4, the deprecated groups, are not used by Caffe).
VARINT, I64, LEN, I32 = 0, 1, 2, 5
_WIRE_NAMES = {VARINT: "varint", I64: "64-bit", LEN: "length-delimited", I32: "32-bit"}
_NUMBER_DTYPES = {"float": np.dtype("<f4"), "double": np.dtype("<f8")}

# Float data are copied out of the mapped file in slices of this size (see copy_numbers).
_COPY_SLICE_BYTES = 16 << 20


def read_caffemodel(path) -> Net:
    """The network in a binary .caffemodel: layers in file order, each with its blobs
    as float32 arrays in Caffe layout (`Layer.params` stays empty: the layer geometry
    belongs to the deploy .prototxt)."""
    path = Path(path)
    size = _checked_size(path)
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            message = _Decoder(mapped, path).message("NetParameter", 0, size, "NetParameter")
        return _net_from_message(message, path)
    except CaffeFormatError:
        # Say what is more likely wrong than the byte where decoding failed.
        if _looks_like_text(_head(path)):
            raise CaffeFormatError(path, "is a text file (a .prototxt?), not a binary .caffemodel") from None
        raise


def write_caffemodel(path, net: Net, generation: str = "current", packed: bool = True) -> None:
    """Write `net` (names, types, bottoms, tops, blobs; not `params`) as a binary .caffemodel.

    generation "current" writes the `layer` field with BlobShape dimensions, as Caffe
    has since 2015; "V1" writes the `layers` field with enum types and legacy 4-D blob
    dimensions, as the 2014 Model Zoo files are. packed=False writes float data one
    element per field (legal, but never written by Caffe) to exercise readers.
    """
    if generation not in ("current", "V1"):
        raise ValueError(f"generation must be 'current' or 'V1', not {generation!r}")
    chunks = _encode("NetParameter", _net_to_message(net, generation, Path(path)), packed)
    with atomic_output(path) as tmp, open(tmp, "wb") as f:
        for chunk in chunks:
            f.write(chunk)


def read_net(path) -> Net:
    """A network from either a text .prototxt or a binary .caffemodel, told apart by content."""
    path = Path(path)
    _checked_size(path)
    if _looks_like_text(_head(path)):
        from replication.caffe.text import read_prototxt  # written separately; only text needs it

        return read_prototxt(path)
    return read_caffemodel(path)


def _checked_size(path: Path) -> int:
    if not path.exists():
        raise CaffeFormatError(path, "no such file")
    if not path.is_file():
        raise CaffeFormatError(path, "not a regular file")
    size = path.stat().st_size
    if size == 0:
        raise CaffeFormatError(path, "empty file, not a Caffe model")
    return size


_SNIFF_BYTES = 1 << 16


def _head(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.read(_SNIFF_BYTES)


def _looks_like_text(head: bytes) -> bool:
    # A binary NetParameter holds length prefixes and float bytes, which are never all
    # printable UTF-8; a prototxt is nothing but. A multi-byte character may be cut
    # where a sample of a longer file ends.
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        if len(head) < _SNIFF_BYTES or err.start < len(head) - 3:
            return False
        text = head[: err.start].decode("utf-8")
    return all(ch.isprintable() or ch in "\t\n\r\f\v" for ch in text)


# --- decoding ----------------------------------------------------------------------------


class _Decoder:
    """Decodes the messages of schema.MESSAGES from a buffer (bytes or an mmap).

    A decoded message is a dict: field name -> value (the last one, for a singular
    field) or list of values (repeated fields; float fields as a list of numpy chunks).
    Unknown fields are skipped. Every malformation raises CaffeFormatError naming the
    byte offset and the field being read.
    """

    def __init__(self, buf, path: Path):
        self.buf = buf
        self.path = path

    def error(self, where: str, pos: int, what: str) -> CaffeFormatError:
        return CaffeFormatError(self.path, f"corrupt or truncated file: {what} at byte {pos} (reading {where})")

    def varint(self, pos: int, end: int, where: str) -> tuple[int, int]:
        result = shift = 0
        start = pos
        while True:
            if pos >= end:
                raise self.error(where, start, "a number runs past the end of its message")
            byte = self.buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            if byte < 0x80:
                return result, pos
            shift += 7
            if shift >= 70:
                raise self.error(where, start, "a number is longer than 10 bytes")

    def span(self, pos: int, end: int, where: str) -> tuple[int, int]:
        """The (start, end) of a length-delimited value whose length prefix is at pos."""
        length, pos = self.varint(pos, end, where)
        if length > end - pos:
            raise self.error(where, pos, f"a field claims {length} bytes but only {end - pos} remain")
        return pos, pos + length

    def message(self, kind: str, start: int, end: int, where: str) -> dict:
        schema = MESSAGES[kind]
        values: dict = {}
        pos = start
        while pos < end:
            key_at = pos
            key, pos = self.varint(pos, end, where)
            number, wire = key >> 3, key & 7
            if number == 0:
                raise self.error(where, key_at, "field number 0")
            field = schema.get(number)
            if field is None:
                pos = self.skip(wire, pos, end, f"{where} field {number}")
            else:
                pos = self.field(field, wire, pos, end, values, f"{where}.{field.name}", key_at)
        return values

    def skip(self, wire: int, pos: int, end: int, where: str) -> int:
        if wire == VARINT:
            return self.varint(pos, end, where)[1]
        if wire == LEN:
            return self.span(pos, end, where)[1]
        if wire in (I32, I64):
            size = 4 if wire == I32 else 8
            if size > end - pos:
                raise self.error(where, pos, f"a {size}-byte value runs past the end of its message")
            return pos + size
        # Groups are deprecated protobuf and caffe.proto has none; 6 and 7 do not exist.
        raise self.error(where, pos, f"wire type {wire} is not used by Caffe files")

    def field(self, field: Field, wire: int, pos: int, end: int, values: dict, where: str, key_at: int) -> int:
        kind = field.kind
        if kind in ("float", "double"):
            return self.numbers(field, wire, pos, end, values, where, key_at)
        if kind == "int" and wire == VARINT:
            value, pos = self.varint(pos, end, where)
            _store(values, field, _signed(value))
            return pos
        if wire != LEN:
            expected = "varint" if kind == "int" else "length-delimited"
            raise self.error(where, key_at, f"wire type {_WIRE_NAMES.get(wire, wire)}, expected {expected}")
        start, stop = self.span(pos, end, where)
        if kind == "int":
            if not field.repeated:
                raise self.error(where, key_at, "a packed list where a single number belongs")
            numbers = values.setdefault(field.name, [])
            while start < stop:
                value, start = self.varint(start, stop, where)
                numbers.append(_signed(value))
        elif kind == "string":
            try:
                text = bytes(self.buf[start:stop]).decode("utf-8")
            except UnicodeDecodeError:
                raise self.error(where, start, "a name that is not UTF-8 text") from None
            _store(values, field, text)
        else:
            index = len(values.get(field.name, [])) if field.repeated else None
            inner = f"{where}[{index}]" if index is not None else where
            _store(values, field, self.message(kind, start, stop, inner))
        return stop

    def numbers(self, field: Field, wire: int, pos: int, end: int, values: dict, where: str, key_at: int) -> int:
        dtype = _NUMBER_DTYPES[field.kind]
        element_wire = I32 if dtype.itemsize == 4 else I64
        chunks = values.setdefault(field.name, [])
        if wire == LEN:  # packed: the common case, one chunk per blob
            start, stop = self.span(pos, end, where)
            if (stop - start) % dtype.itemsize:
                what = f"{stop - start} bytes of {field.kind} data are not a whole number of values"
                raise self.error(where, start, what)
            chunks.append(self.copy_numbers(dtype, start, (stop - start) // dtype.itemsize))
            return stop
        if wire != element_wire:
            raise self.error(where, key_at, f"wire type {_WIRE_NAMES.get(wire, wire)}, expected {field.kind} data")
        # Unpacked: (key, value) records back to back. Take the whole run of identical
        # keys in one numpy step instead of one Python iteration per value.
        key_size = pos - key_at
        stride = key_size + dtype.itemsize
        if dtype.itemsize > end - pos:
            raise self.error(where, pos, f"a {field.kind} value runs past the end of its message")
        records = np.frombuffer(self.buf, np.uint8, count=(end - key_at) // stride * stride, offset=key_at)
        records = records.reshape(-1, stride)
        key = records[0, :key_size]
        same_key = np.all(records[:, :key_size] == key, axis=1)
        run = len(same_key) if same_key.all() else int(np.argmin(same_key))
        chunks.append(records[:run, key_size:].copy().view(dtype).astype(np.float32).reshape(-1))
        del records, key, same_key  # the views pin the mmap, which must close afterwards
        return key_at + run * stride

    def copy_numbers(self, dtype: np.dtype, start: int, count: int) -> np.ndarray:
        # Copied a slice at a time, each slice's mapped pages dropped from this process
        # once copied: otherwise the mapped file would stay resident beside the arrays
        # and double the peak memory.
        array = np.empty(count, np.float32)
        step = _COPY_SLICE_BYTES // dtype.itemsize
        for first in range(0, count, step):
            n = min(step, count - first)
            offset = start + first * dtype.itemsize
            array[first : first + n] = np.frombuffer(self.buf, dtype, count=n, offset=offset)
            self.release(offset, offset + n * dtype.itemsize)
        return array

    def release(self, start: int, stop: int) -> None:
        if isinstance(self.buf, mmap.mmap) and hasattr(mmap, "MADV_DONTNEED"):  # Linux, macOS
            first = start // mmap.PAGESIZE * mmap.PAGESIZE
            self.buf.madvise(mmap.MADV_DONTNEED, first, stop - first)


def _signed(value: int) -> int:
    # int32/int64 (and enums) store negative numbers as 64-bit two's complement.
    return value - (1 << 64) if value >= 1 << 63 else value


def _store(values: dict, field: Field, value) -> None:
    if field.repeated:
        values.setdefault(field.name, []).append(value)
    else:
        values[field.name] = value


def _net_from_message(message: dict, path: Path) -> Net:
    current, v1 = message.get("layer", []), message.get("layers", [])
    if current and v1:
        raise CaffeFormatError(path, "has both 'layer' (current) and 'layers' (V1) fields; Caffe refuses such files")
    if not current and not v1:
        raise CaffeFormatError(path, "contains no layers: not a Caffe model (or an empty network)")
    generation = "V1" if v1 else "current"
    layers = [_layer(raw, i, generation, path) for i, raw in enumerate(current or v1)]
    return Net(name=message.get("name", ""), layers=layers, inputs=_inputs(message, path), generation=generation)


def _inputs(message: dict, path: Path) -> dict[str, tuple[int, ...]]:
    names = message.get("input", [])
    if "input_shape" in message:
        shapes = [tuple(s.get("dim", [])) for s in message["input_shape"]]
    else:
        dims = message.get("input_dim", [])
        shapes = [tuple(dims[i : i + 4]) for i in range(0, len(dims), 4)]
        if len(dims) % 4:
            shapes = []  # reported below as a mismatch
    if len(shapes) != len(names):
        raise CaffeFormatError(path, f"{len(names)} network inputs but {len(shapes)} input shapes")
    return dict(zip(names, shapes))


def _layer(raw: dict, index: int, generation: str, path: Path) -> Layer:
    name = raw.get("name", "")
    label = f"layer {index} ({name!r})"
    if generation == "V1":
        if "layer" in raw:
            raise CaffeFormatError(path, f"{label} is in the pre-2014 V0 format, which is not supported")
        number = raw.get("type", 0)
        if number not in V1_LAYER_TYPES:
            raise CaffeFormatError(path, f"{label} has unknown V1 layer type number {number}")
        layer_type = V1_LAYER_TYPES[number]
    else:
        layer_type = raw.get("type", "")
    blobs = [_blob(b, layer_type, j, f"{label} blob {j}", path) for j, b in enumerate(raw.get("blobs", []))]
    return Layer(name=name, type=layer_type, bottoms=raw.get("bottom", []), tops=raw.get("top", []), blobs=blobs)


def _blob(raw: dict, layer_type: str, index: int, label: str, path: Path) -> np.ndarray:
    # Caffe's Blob::FromProto: double_data wins over data; the legacy 4-D dimensions,
    # when any is present, win over `shape`.
    chunks = raw.get("double_data") or raw.get("data") or []
    values = chunks[0] if len(chunks) == 1 else np.concatenate(chunks) if chunks else np.empty(0, np.float32)
    legacy = any(dim in raw for dim in LEGACY_DIMS)
    shape = tuple(raw.get(dim, 0) for dim in LEGACY_DIMS) if legacy else tuple(raw.get("shape", {}).get("dim", []))
    if any(d < 0 for d in shape):
        raise CaffeFormatError(path, f"{label} has a negative dimension in its shape {shape}")
    if math.prod(shape) != values.size:
        raise CaffeFormatError(
            path, f"{label} has shape {shape} ({math.prod(shape)} values) but holds {values.size} values"
        )
    if legacy:
        shape = _current_shape(shape, layer_type, index, label, path)
    return values.reshape(shape)


def _current_shape(legacy: tuple, layer_type: str, index: int, label: str, path: Path) -> tuple:
    """The shape Caffe's current layers give a blob stored with legacy 4-D dimensions.

    Inner-product weights were stored (1, 1, out, in) and biases (1, 1, 1, n); the current
    layers hold (out, in) and (n,). Convolution weights are 4-D either way. Other layer
    types kept no blobs in the V1 generation, so their shapes are left as stored.
    """
    if layer_type == "InnerProduct" and index == 0:
        keep = 2
    elif layer_type in ("InnerProduct", "Convolution", "Deconvolution") and index == 1:
        keep = 1
    else:
        return legacy
    if any(d != 1 for d in legacy[:-keep]):
        expected = "(1, 1, out, in)" if keep == 2 else "(1, 1, 1, n)"
        raise CaffeFormatError(path, f"{label}: legacy shape {legacy} does not fit a {layer_type} blob {expected}")
    return legacy[-keep:]


# --- encoding ----------------------------------------------------------------------------


def _net_to_message(net: Net, generation: str, path: Path) -> dict:
    message: dict = {"name": net.name} if net.name else {}
    if net.inputs:
        message["input"] = list(net.inputs)
        shapes = list(net.inputs.values())
        if generation == "V1":
            if any(len(s) != 4 for s in shapes):
                raise CaffeFormatError(path, "V1 files give inputs as 4-D input_dim; an input is not 4-D")
            message["input_dim"] = [d for s in shapes for d in s]
        else:
            message["input_shape"] = [{"dim": list(s)} for s in shapes]
    if generation == "V1":
        message["layers"] = [_v1_layer_message(layer, path) for layer in net.layers]
    else:
        message["layer"] = [
            {
                "name": layer.name,
                "type": layer.type,
                "bottom": layer.bottoms,
                "top": layer.tops,
                "blobs": [{"shape": {"dim": list(b.shape)}, "data": [b]} for b in layer.blobs],
            }
            for layer in net.layers
        ]
    return message


def _v1_layer_message(layer: Layer, path: Path) -> dict:
    if layer.type not in V1_LAYER_NUMBERS:
        raise CaffeFormatError(path, f"layer {layer.name!r}: type {layer.type!r} does not exist in the V1 format")
    blobs = []
    for blob in layer.blobs:
        if blob.ndim > 4:
            raise CaffeFormatError(path, f"layer {layer.name!r}: the V1 format cannot store a {blob.ndim}-D blob")
        # Caffe's legacy shape: the dimensions right-aligned in (num, channels, height, width).
        legacy = (1,) * (4 - blob.ndim) + blob.shape
        blobs.append({**dict(zip(LEGACY_DIMS, legacy)), "data": [blob]})
    return {
        "bottom": layer.bottoms,
        "top": layer.tops,
        "name": layer.name,
        "type": V1_LAYER_NUMBERS[layer.type],
        "blobs": blobs,
    }


def _encode(kind: str, values: dict, packed: bool) -> list:
    """The wire bytes of one message as a list of chunks (bytes, or views of the float
    arrays, so that writing a large model copies no weights)."""
    chunks: list = []
    for number, field in sorted(MESSAGES[kind].items()):
        if field.name not in values:
            continue
        items = values[field.name] if field.repeated else [values[field.name]]
        if field.kind in _NUMBER_DTYPES:
            for array in items:
                chunks += _encode_numbers(number, field, array, packed)
        elif field.kind == "int":
            if field.packed and packed:
                body = b"".join(_varint(v) for v in items)
                chunks += [_key(number, LEN), _varint(len(body)), body] if items else []
            else:
                chunks += [_key(number, VARINT) + _varint(v) for v in items]
        elif field.kind == "string":
            for text in items:
                data = text.encode("utf-8")
                chunks += [_key(number, LEN), _varint(len(data)), data]
        else:
            for item in items:
                inner = _encode(field.kind, item, packed)
                chunks += [_key(number, LEN), _varint(sum(len(c) for c in inner)), *inner]
    return chunks


def _encode_numbers(number: int, field: Field, array, packed: bool) -> list:
    dtype = _NUMBER_DTYPES[field.kind]
    flat = np.ascontiguousarray(array, dtype=dtype).reshape(-1)
    if packed:
        if flat.size == 0:
            return []
        return [_key(number, LEN), _varint(flat.nbytes), memoryview(flat).cast("B")]
    key = np.frombuffer(_key(number, I32 if dtype.itemsize == 4 else I64), np.uint8)
    records = np.empty((flat.size, key.size + dtype.itemsize), np.uint8)
    records[:, : key.size] = key
    records[:, key.size :] = flat.view(np.uint8).reshape(-1, dtype.itemsize)
    return [records.tobytes()]


def _key(number: int, wire: int) -> bytes:
    return _varint(number << 3 | wire)


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative numbers as 64-bit two's complement
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)
