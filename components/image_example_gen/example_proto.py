"""tf.train.Example's wire format, without importing TensorFlow.

ImageExampleGen's Beam workers only build Examples; importing TensorFlow for
that costs each worker process about 4.5 s of start-up and 400 MB
(bench/ingest.py, profiled with py-spy), more than decoding a thousand images.
These message classes are declared with protobuf's own descriptor API, field
for field as tensorflow/core/example/{example,feature}.proto, in a private
descriptor pool so that they never clash with TensorFlow's when both are
loaded. Their bytes parse as tf.train.Example (tests/components/test_image_example_gen.py).
"""
from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_Field = descriptor_pb2.FieldDescriptorProto


def _message_classes() -> tuple:
    proto = descriptor_pb2.FileDescriptorProto(name="imagepipe/tf_example.proto", package="tensorflow", syntax="proto3")

    def message(name: str, *fields: tuple, parent=None) -> descriptor_pb2.DescriptorProto:
        declared = (parent.nested_type if parent else proto.message_type).add(name=name)
        for field_name, number, field_type, label, type_name in fields:
            declared.field.add(name=field_name, number=number, type=field_type, label=label, type_name=type_name)
        return declared

    repeated, optional = _Field.LABEL_REPEATED, _Field.LABEL_OPTIONAL
    message("BytesList", ("value", 1, _Field.TYPE_BYTES, repeated, None))
    message("Int64List", ("value", 1, _Field.TYPE_INT64, repeated, None))  # packed: proto3's default
    message("FloatList", ("value", 1, _Field.TYPE_FLOAT, repeated, None))
    feature = message("Feature",
                      ("bytes_list", 1, _Field.TYPE_MESSAGE, optional, ".tensorflow.BytesList"),
                      ("float_list", 2, _Field.TYPE_MESSAGE, optional, ".tensorflow.FloatList"),
                      ("int64_list", 3, _Field.TYPE_MESSAGE, optional, ".tensorflow.Int64List"))
    feature.oneof_decl.add(name="kind")
    for field in feature.field:
        field.oneof_index = 0
    features = message("Features", ("feature", 1, _Field.TYPE_MESSAGE, repeated, ".tensorflow.Features.FeatureEntry"))
    entry = message("FeatureEntry", ("key", 1, _Field.TYPE_STRING, optional, None),
                    ("value", 2, _Field.TYPE_MESSAGE, optional, ".tensorflow.Feature"), parent=features)
    entry.options.map_entry = True
    message("Example", ("features", 1, _Field.TYPE_MESSAGE, optional, ".tensorflow.Features"))

    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return tuple(message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.{name}"))
                 for name in ("Example", "Features", "Feature", "BytesList", "Int64List"))


Example, Features, Feature, BytesList, Int64List = _message_classes()


def bytes_feature(value: bytes) -> Feature:
    return Feature(bytes_list=BytesList(value=[value]))


def int_feature(value: int) -> Feature:
    return Feature(int64_list=Int64List(value=[value]))
