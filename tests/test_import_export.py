"""test_import_export.py - `trainscope import tfevents|csv` and `trainscope
export --format tfevents` with real processes and files.

The event files imported here are written by ANOTHER writer than ours:
Google's protobuf runtime (Debian's python3-protobuf) serializes the
TensorFlow Event/Summary/TensorProto messages, declared below from
tensorflow's .proto field numbers, and crcmod's CRC-32C frames them as
TFRecords. Our exported files are read back with the same runtime, which is
how TensorBoard reads them.

usage: /usr/bin/python3 test_import_export.py TRAINSCOPE
"""
import csv
import io
import math
import os
import random
import struct
import sys
import tempfile

import crcmod.predefined
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from tslib import Collector, check, cli, export_points, finish, parse_value

TRAINSCOPE = sys.argv[1]
crc32c = crcmod.predefined.mkCrcFun("crc-32c")

# ---- TensorFlow's event messages, declared for Google's protobuf runtime --

F = descriptor_pb2.FieldDescriptorProto


def _messages():
    fdp = descriptor_pb2.FileDescriptorProto(name="ts_test_event.proto", package="tbtest",
                                             syntax="proto3")

    def msg(name, fields, oneofs=()):
        m = fdp.message_type.add(name=name)
        for o in oneofs:
            m.oneof_decl.add(name=o)
        for fname, num, typ, label, type_name, oneof in fields:
            f = m.field.add(name=fname, number=num, type=typ, label=label)
            if type_name:
                f.type_name = ".tbtest." + type_name
            if oneof is not None:
                f.oneof_index = oneof

    O, R = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    msg("PluginData", [("plugin_name", 1, F.TYPE_STRING, O, None, None),
                       ("content", 2, F.TYPE_BYTES, O, None, None)])
    msg("SummaryMetadata", [("plugin_data", 1, F.TYPE_MESSAGE, O, "PluginData", None),
                            ("display_name", 2, F.TYPE_STRING, O, None, None),
                            ("data_class", 4, F.TYPE_INT32, O, None, None)])
    msg("Dim", [("size", 1, F.TYPE_INT64, O, None, None), ("name", 2, F.TYPE_STRING, O, None, None)])
    msg("TensorShapeProto", [("dim", 2, F.TYPE_MESSAGE, R, "Dim", None),
                             ("unknown_rank", 3, F.TYPE_BOOL, O, None, None)])
    msg("TensorProto", [("dtype", 1, F.TYPE_INT32, O, None, None),
                        ("tensor_shape", 2, F.TYPE_MESSAGE, O, "TensorShapeProto", None),
                        ("tensor_content", 4, F.TYPE_BYTES, O, None, None),
                        ("float_val", 5, F.TYPE_FLOAT, R, None, None),
                        ("double_val", 6, F.TYPE_DOUBLE, R, None, None),
                        ("int_val", 7, F.TYPE_INT32, R, None, None),
                        ("string_val", 8, F.TYPE_BYTES, R, None, None),
                        ("int64_val", 10, F.TYPE_INT64, R, None, None)])
    msg("Image", [("height", 1, F.TYPE_INT32, O, None, None),
                  ("encoded_image_string", 4, F.TYPE_BYTES, O, None, None)])
    msg("Value", [("node_name", 7, F.TYPE_STRING, O, None, None),
                  ("tag", 1, F.TYPE_STRING, O, None, None),
                  ("metadata", 9, F.TYPE_MESSAGE, O, "SummaryMetadata", None),
                  ("simple_value", 2, F.TYPE_FLOAT, O, None, 0),
                  ("image", 4, F.TYPE_MESSAGE, O, "Image", 0),
                  ("tensor", 8, F.TYPE_MESSAGE, O, "TensorProto", 0)], oneofs=["value"])
    msg("Summary", [("value", 1, F.TYPE_MESSAGE, R, "Value", None)])
    msg("Event", [("wall_time", 1, F.TYPE_DOUBLE, O, None, None),
                  ("step", 2, F.TYPE_INT64, O, None, None),
                  ("file_version", 3, F.TYPE_STRING, O, None, 0),
                  ("graph_def", 4, F.TYPE_BYTES, O, None, 0),
                  ("summary", 5, F.TYPE_MESSAGE, O, "Summary", 0)], oneofs=["what"])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    factory = message_factory.MessageFactory(pool)
    get = getattr(message_factory, "GetMessageClass", None)
    return {n: (get(pool.FindMessageTypeByName("tbtest." + n)) if get else
                factory.GetPrototype(pool.FindMessageTypeByName("tbtest." + n)))
            for n in ("Event", "Summary", "Value", "TensorProto")}


M = _messages()
DT_FLOAT, DT_DOUBLE, DT_INT32, DT_STRING, DT_INT64 = 1, 2, 3, 7, 9


def masked_crc(b):
    c = crc32c(b)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(data):
    head = struct.pack("<Q", len(data))
    return head + struct.pack("<I", masked_crc(head)) + data + struct.pack("<I", masked_crc(data))


def read_records(path):
    """Our own check of a TFRecord file: every checksum, every payload."""
    out, data, pos = [], open(path, "rb").read(), 0
    while pos < len(data):
        head = data[pos:pos + 8]
        (n,) = struct.unpack("<Q", head)
        assert struct.unpack("<I", data[pos + 8:pos + 12])[0] == masked_crc(head), "length crc"
        body = data[pos + 12:pos + 12 + n]
        assert struct.unpack("<I", data[pos + 12 + n:pos + 16 + n])[0] == masked_crc(body), "data crc"
        out.append(body)
        pos += 16 + n
    return out


def event(step=0, wall=0.0, values=(), **kw):
    e = M["Event"](step=step, wall_time=wall, **kw)
    for v in values:
        e.summary.value.append(v)
    return e.SerializeToString()


def simple(tag, x, node=False):
    v = M["Value"](simple_value=x)
    if node:
        v.node_name = tag
    else:
        v.tag = tag
    return v


def tensor(tag, dtype, shape=(), plugin="scalars", **kw):
    v = M["Value"](tag=tag)
    v.metadata.plugin_data.plugin_name = plugin
    v.tensor.dtype = dtype
    v.tensor.tensor_shape.SetInParent()
    for d in shape:
        v.tensor.tensor_shape.dim.add(size=d)
    for k, x in kw.items():
        if isinstance(x, list):
            getattr(v.tensor, k).extend(x)
        else:
            setattr(v.tensor, k, x)
    return v


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def ms_floor(wall):
    """The store's time of a wall_time: microseconds, then its 1 ms unit."""
    ns = round(wall * 1e6) * 1000
    return ns // 1_000_000 * 1_000_000


def export_rows(store, run):
    rc, out, err = cli(TRAINSCOPE, "export", store, run, "--format", "csv")
    assert rc == 0, err
    rows = list(csv.reader(io.StringIO(out)))[1:]
    return {(r[1], int(r[3])): (int(r[4]), parse_value(r[5])) for r in rows}


# ---- tests -----------------------------------------------------------------

def tfevents_from_another_writer(col):
    root = os.path.join(col.tmp, "tb")
    os.makedirs(os.path.join(root, "a"))
    os.makedirs(os.path.join(root, "b", "seed1"))
    img = M["Value"](tag="img")
    img.image.height = 1
    img.image.encoded_image_string = b"\x89PNG"
    w = 1700000000.123456
    file1 = [
        event(wall=w, file_version="brain.Event:2"),
        event(wall=w, graph_def=b"\x0a\x03abc"),
        event(1, w + 1, [simple("loss", 2.5),
                         tensor("acc", DT_FLOAT, float_val=[0.75]),
                         tensor("tokens", DT_INT64, int64_val=[123456789012]),
                         tensor("hist", DT_DOUBLE, shape=(3,), plugin="histograms",
                                double_val=[1.0, 2.0, 3.0]),
                         img]),
        event(2, w + 2.5, [simple("loss", 0.1),
                           tensor("acc", DT_FLOAT, shape=(1,), float_val=[0.8]),
                           tensor("lr", DT_DOUBLE, tensor_content=struct.pack("<d", 3e-4)),
                           tensor("epoch", DT_INT32, tensor_content=struct.pack("<i", 7)),
                           tensor("notes", DT_STRING, plugin="text", string_val=[b"hello"])]),
        event(3, w + 3.75, [tensor("lr", DT_DOUBLE, double_val=[1e-4])]),
    ]
    file2 = [event(wall=w + 10, file_version="brain.Event:2"),
             event(4, w + 11, [simple("loss", 1.25), simple("loss_at_0", 0.0)])]
    file3 = [event(wall=w, file_version="brain.Event:2"),
             event(0, w + 1, [simple("old_loss", 3.0, node=True)])]
    with open(os.path.join(root, "a", "events.out.tfevents.1700000000.host"), "wb") as f:
        f.write(b"".join(record(e) for e in file1))
    with open(os.path.join(root, "a", "events.out.tfevents.1700000010.host"), "wb") as f:
        f.write(b"".join(record(e) for e in file2))
    with open(os.path.join(root, "b", "seed1", "events.out.tfevents.1700000000.host.v2"), "wb") as f:
        f.write(b"".join(record(e) for e in file3))
    with open(os.path.join(root, "README.txt"), "w") as f:
        f.write("not an event file\n")
    rc, out, err = cli(TRAINSCOPE, "import", "tfevents", root, "--endpoint", col.ingest)
    check(rc == 0, f"tfevents: import of two run directories exits 0 (rc {rc})")
    got = export_rows(col.store, "a")
    want = {("loss", 1): (ms_floor(w + 1), bits(2.5)),
            ("loss", 2): (ms_floor(w + 2.5), bits(f32(0.1))),
            ("loss", 4): (ms_floor(w + 11), bits(1.25)),
            ("loss_at_0", 4): (ms_floor(w + 11), bits(0.0)),
            ("acc", 1): (ms_floor(w + 1), bits(f32(0.75))),
            ("acc", 2): (ms_floor(w + 2.5), bits(f32(0.8))),
            ("tokens", 1): (ms_floor(w + 1), bits(123456789012.0)),
            ("lr", 2): (ms_floor(w + 2.5), bits(3e-4)),
            ("lr", 3): (ms_floor(w + 3.75), bits(1e-4)),
            ("epoch", 2): (ms_floor(w + 2.5), bits(7.0))}
    check(got == want, "tfevents: simple_value, float/double/int32/int64 tensors (typed values and "
                       "tensor_content) imported with step, wall time and exact value")
    if got != want:
        for k in sorted(set(got) | set(want)):
            if got.get(k) != want.get(k):
                print(f"    {k}: got {got.get(k)} want {want.get(k)}")
    check("3 non-scalar values skipped" in err, "tfevents: histogram, image and text values are "
                                                "counted as skipped, not imported")
    got_b = export_rows(col.store, "b/seed1")
    check(got_b == {("old_loss", 0): (ms_floor(w + 1), bits(3.0))},
          "tfevents: nested directory is run 'b/seed1'; node_name tags of old writers are read")


def corrupt_records(col):
    d = os.path.join(col.tmp, "corrupt", "run")
    os.makedirs(d)
    recs = [record(event(wall=1.7e9, file_version="brain.Event:2"))]
    recs += [record(event(i, 1.7e9 + i, [simple("v", i * 1.5)])) for i in range(1, 11)]
    offsets = [sum(len(r) for r in recs[:i]) for i in range(len(recs))]
    blob = bytearray(b"".join(recs))
    blob[offsets[3] + 14] ^= 0x40          # record 3: a flipped bit in its data
    blob[offsets[5] + 0] ^= 0x01           # record 5: a flipped bit in its length
    blob = blob[:-5]                       # record 10: the file ends inside it
    path = os.path.join(d, "events.out.tfevents.1.host")
    with open(path, "wb") as f:
        f.write(blob)
    rc, out, err = cli(TRAINSCOPE, "import", "tfevents", os.path.join(col.tmp, "corrupt"),
                       "--endpoint", col.ingest)
    check(rc == 1, f"corrupt: exit 1 when records were damaged ({rc})")
    check(f"{path}: offset {offsets[3]}: data checksum mismatch" in err,
          "corrupt: a bad data checksum is reported with file and offset")
    check(f"{path}: offset {offsets[5]}: length checksum mismatch; skipped {len(recs[5])} bytes "
          f"to the next valid record at offset {offsets[6]}" in err,
          "corrupt: a bad length checksum is reported and reading resumes at the next record")
    check(f"{path}: offset {offsets[10]}: truncated record" in err,
          "corrupt: a truncated last record is reported")
    got = export_rows(col.store, "run")
    want_steps = [1, 2, 4, 6, 7, 8, 9]
    check(sorted(s for _, s in got) == want_steps and
          all(got[("v", s)][1] == bits(s * 1.5) for s in want_steps),
          f"corrupt: every intact record is imported ({sorted(s for _, s in got)})")


def special_values():
    rnd = random.Random(5)
    vals = [0.0, -0.0, 1e-310, -5e-324, 1.7976931348623157e308, math.inf, -math.inf, 0.1, 1 / 3]
    vals += [rnd.uniform(-1e6, 1e6) for _ in range(300)]
    vals += [struct.unpack("<d", struct.pack("<Q", rnd.getrandbits(64)))[0] for _ in range(300)]
    return vals


def fmt(v):
    b = bits(v)
    if math.isnan(v):
        sign = "-" if b >> 63 else ""
        mant = b & 0x000FFFFFFFFFFFFF
        return f"{sign}nan(0x{mant:x})"
    return repr(v)


def round_trips(col):
    """csv -> store -> csv; store -> tfevents -> store: the same 64 bits."""
    vals = special_values()
    src_csv = os.path.join(col.tmp, "src.csv")
    with open(src_csv, "w") as f:
        f.write("run,metric,rank,step,wall_ns,value\n")
        for i, v in enumerate(vals):
            f.write(f"ignored,\"m,{i % 3}\",0,{i},{1700000000000000000 + i * 1_000_000},{fmt(v)}\n")
    rc, out, err = cli(TRAINSCOPE, "import", "csv", src_csv, "--run", "src", "--endpoint", col.ingest)
    check(rc == 0, f"csv long: import exits 0 ({err.strip()})")
    src = export_rows(col.store, "src")
    want = {(f"m,{i % 3}", i): (1700000000000000000 + i * 1_000_000, bits(v)) for i, v in enumerate(vals)}
    check(src == want, f"csv long: {len(vals)} values incl. NaN payloads, -0, subnormals, inf exact, "
                       "with their wall times")
    # the existing CSV export imports back exactly
    rc, exported, _ = cli(TRAINSCOPE, "export", col.store, "src", "--format", "csv")
    again = os.path.join(col.tmp, "again.csv")
    with open(again, "w") as f:
        f.write(exported)
    rc, out, err = cli(TRAINSCOPE, "import", "csv", again, "--run", "again", "--endpoint", col.ingest)
    check(rc == 0 and export_rows(col.store, "again") == src,
          "csv: `trainscope export` output imports back exactly (values, steps, wall times)")
    # tfevents round trip
    out_dir = os.path.join(col.tmp, "exported")
    rc, out, err = cli(TRAINSCOPE, "export", col.store, "src", "--format", "tfevents", "--out", out_dir)
    files = os.listdir(out_dir) if os.path.isdir(out_dir) else []
    check(rc == 0 and len(files) == 1 and files[0].startswith("events.out.tfevents.") and
          files[0].split(".")[3].isdigit(), f"export tfevents: one file events.out.tfevents.<secs>.<host> ({files})")
    recs = read_records(os.path.join(out_dir, files[0]))
    events = [M["Event"].FromString(r) for r in recs]
    check(events[0].file_version == "brain.Event:2", "export tfevents: a file_version record comes first")
    vals_ok = all(len(e.summary.value) == 1 and e.summary.value[0].metadata.plugin_data.plugin_name == "scalars"
                  and e.summary.value[0].tensor.dtype == DT_DOUBLE and len(e.summary.value[0].tensor.tensor_shape.dim) == 0
                  for e in events[1:])
    check(len(events) == len(vals) + 1 and vals_ok,
          "export tfevents: every point is an Event with a DT_DOUBLE scalar tensor of the scalars plugin "
          "(parsed by Google's protobuf runtime, CRCs checked)")
    by_key = {(e.summary.value[0].tag, e.step): (e.wall_time, bits(e.summary.value[0].tensor.double_val[0]))
              for e in events[1:]}
    check(all(by_key[k][1] == want[k][1] and round(by_key[k][0] * 1e6) * 1000 == want[k][0] for k in want),
          "export tfevents: tags, steps, wall times and values as stored")
    rc, out, err = cli(TRAINSCOPE, "import", "tfevents", out_dir, "--run", "rt", "--endpoint", col.ingest)
    check(rc == 0, f"round trip: import of our export exits 0 ({err.strip()})")
    check(export_rows(col.store, "rt") == src, "round trip: import(export(run)) is value- and time-exact")
    # simple_value on request: float32, as documented
    sv_dir = os.path.join(col.tmp, "simple")
    rc, out, err = cli(TRAINSCOPE, "export", col.store, "src", "--format", "tfevents", "--out", sv_dir,
                       "--metric", "m,0", "--simple-value")
    evs = [M["Event"].FromString(r) for r in read_records(os.path.join(sv_dir, os.listdir(sv_dir)[0]))][1:]
    check(rc == 0 and len(evs) == 203 and all(e.summary.value[0].WhichOneof("value") == "simple_value" for e in evs),
          "export --simple-value: float32 simple_value events, --metric filters")


def csv_wide(col):
    path = os.path.join(col.tmp, "wide.csv")
    with open(path, "w") as f:
        f.write("\ufeffstep,train/loss,acc,wall_ns\r\n1,2.5,0.5,1700000000001000000\r\n"
                "2,,0.625,1700000000002000000\r\n3,1.75,nan,1700000000003000000\r\n")
    rc, out, err = cli(TRAINSCOPE, "import", "csv", path, "--run", "wide", "--endpoint", col.ingest)
    check(rc == 0 and "wide layout" in err, f"csv wide: import exits 0 ({err.strip()})")
    got = export_rows(col.store, "wide")
    check(got == {("train/loss", 1): (1700000000001000000, bits(2.5)),
                  ("train/loss", 3): (1700000000003000000, bits(1.75)),
                  ("acc", 1): (1700000000001000000, bits(0.5)),
                  ("acc", 2): (1700000000002000000, bits(0.625)),
                  ("acc", 3): (1700000000003000000, 0x7FF8000000000000)},
          "csv wide: one series per column, empty cells skipped, BOM and CRLF lines, exact values")


def csv_bad(col):
    path = os.path.join(col.tmp, "bad.csv")
    with open(path, "w") as f:
        f.write("metric,step,value\nloss,1,2.5\nloss,2,abc\n")
    rc, out, err = cli(TRAINSCOPE, "import", "csv", path, "--run", "bad", "--endpoint", col.ingest)
    check(rc == 1 and f"{path}:3: value 'abc' in column 'value' is not a number" in err,
          f"csv bad value: exit 1 naming file, line and value ({err.strip()})")
    rc, out, err = cli(TRAINSCOPE, "ls", col.store)
    check(" bad " not in out, "csv bad value: nothing of that file was imported")
    with open(path, "w") as f:
        f.write("metric,step,value\nloss,1,2.5\n")
    rc, out, err = cli(TRAINSCOPE, "import", "csv", path, "--endpoint", col.ingest)
    check(rc == 1 and "--run NAME" in err, "csv without run column or --run: clear error")
    with open(path, "w") as f:
        f.write("when,loss\n1,2\n")
    rc, out, err = cli(TRAINSCOPE, "import", "csv", path, "--run", "x", "--endpoint", col.ingest)
    check(rc == 1 and "no 'step' column" in err, "csv without step column: clear error")


def store_mode(col):
    """--store writes a store directly, but never one a collector holds."""
    path = os.path.join(col.tmp, "wide.csv")
    offline = os.path.join(col.tmp, "offline.db")
    rc, out, err = cli(TRAINSCOPE, "import", "csv", path, "--run", "off", "--store", offline)
    check(rc == 0 and export_rows(offline, "off")[("acc", 2)] == (1700000000002000000, bits(0.625)),
          f"store mode: import into a store file without a collector ({err.strip()})")
    rc, out, err = cli(TRAINSCOPE, "ls", offline)
    check(rc == 0 and "finished" in out, "store mode: the run is finished")
    rc, out, err = cli(TRAINSCOPE, "import", "csv", path, "--run", "x", "--store", col.store)
    check(rc == 1 and "already being written" in err and "--endpoint" in err,
          f"store mode: refused while the collector writes that store ({err.strip()[:150]})")


def bad_usage(col):
    empty = tempfile.mkdtemp(dir=col.tmp)
    cases = [
        (["import"], 2, "usage"),
        (["import", "parquet", "x"], 2, "unknown kind 'parquet'"),
        (["import", "tfevents", "/nonexistent/logs"], 1, "/nonexistent/logs: No such file"),
        (["import", "tfevents", empty], 1, "no event files"),
        (["import", "csv", "/nonexistent.csv", "--run", "x"], 1, "cannot read /nonexistent.csv"),
        (["import", "csv", "a.csv", "--endpoint", "tcp://127.0.0.1:1", "--store", "x.db"], 2,
         "exclude each other"),
        (["import", "tfevents", empty, "--timeout-ms", "soon"], 2, "--timeout-ms"),
        (["import", "csv", os.path.join(col.tmp, "wide.csv"), "--run", "x", "--endpoint",
          f"ipc://{col.tmp}/nobody-here"], 1, "no collector answered at ipc://"),
        (["export", col.store, "src", "--format", "tfevents"], 2, "needs --out DIR"),
        (["export", col.store, "nosuchrun", "--format", "tfevents", "--out", empty], 1,
         "no run named 'nosuchrun'"),
        (["export", col.store, "src", "--format", "xml"], 2, "use csv, jsonl or tfevents"),
    ]
    for args, want_rc, want_msg in cases:
        rc, out, err = cli(TRAINSCOPE, *args)
        check(rc == want_rc and want_msg in err,
              f"usage: {' '.join(args[:3])} ... -> exit {want_rc}, '{want_msg}' (got {rc})")


def main():
    col = Collector(TRAINSCOPE, extra=["--quiet", "--commit-ms", "20"]).start()
    try:
        tfevents_from_another_writer(col)
        corrupt_records(col)
        round_trips(col)
        csv_wide(col)
        csv_bad(col)
        store_mode(col)
        bad_usage(col)
    finally:
        check(col.stop() == 0, "collector exits 0")
    finish()


if __name__ == "__main__":
    main()
