import type Long from 'long';

/**
 * TypeScript views of the ONNX messages (see `onnx.proto` next to this file). Field names keep the
 * proto's snake_case so that decoded messages and hand-built plain objects are interchangeable.
 *
 * proto2 semantics: every scalar field has presence. A field that is absent in the bytes reads as its
 * default (`0`, `''`, `null` for messages) but is not written back; an explicitly set default *is*
 * written. That is what makes `encodeModel(decodeModel(b))` byte-identical to `b`.
 *
 * 64-bit integers decode as `Long` (exact); any field typed `Int64` also accepts a plain `number`.
 */
export type Int64 = Long | number;

/** ONNX `TensorProto.DataType` codes. */
export const DataType = {
  UNDEFINED: 0,
  FLOAT: 1,
  UINT8: 2,
  INT8: 3,
  UINT16: 4,
  INT16: 5,
  INT32: 6,
  INT64: 7,
  STRING: 8,
  BOOL: 9,
  FLOAT16: 10,
  DOUBLE: 11,
  UINT32: 12,
  UINT64: 13,
  COMPLEX64: 14,
  COMPLEX128: 15,
  BFLOAT16: 16,
  FLOAT8E4M3FN: 17,
  FLOAT8E4M3FNUZ: 18,
  FLOAT8E5M2: 19,
  FLOAT8E5M2FNUZ: 20,
  UINT4: 21,
  INT4: 22,
  FLOAT4E2M1: 23,
  FLOAT8E8M0: 24,
} as const;
export type DataTypeCode = (typeof DataType)[keyof typeof DataType];

/** ONNX `AttributeProto.AttributeType` codes. */
export const AttributeType = {
  UNDEFINED: 0,
  FLOAT: 1,
  INT: 2,
  STRING: 3,
  TENSOR: 4,
  GRAPH: 5,
  FLOATS: 6,
  INTS: 7,
  STRINGS: 8,
  TENSORS: 9,
  GRAPHS: 10,
  SPARSE_TENSOR: 11,
  SPARSE_TENSORS: 12,
  TYPE_PROTO: 13,
  TYPE_PROTOS: 14,
} as const;

export interface StringStringEntryProto {
  key?: string | null;
  value?: string | null;
}

export interface OperatorSetIdProto {
  domain?: string | null;
  version?: Int64 | null;
}

export interface TensorSegment {
  begin?: Int64 | null;
  end?: Int64 | null;
}

export interface TensorProto {
  dims?: Int64[];
  data_type?: number | null;
  segment?: TensorSegment | null;
  float_data?: number[];
  int32_data?: number[];
  string_data?: Uint8Array[];
  int64_data?: Int64[];
  name?: string | null;
  doc_string?: string | null;
  raw_data?: Uint8Array | null;
  external_data?: StringStringEntryProto[];
  data_location?: number | null;
  double_data?: number[];
  uint64_data?: Int64[];
  metadata_props?: StringStringEntryProto[];
}

export interface SparseTensorProto {
  values?: TensorProto | null;
  indices?: TensorProto | null;
  dims?: Int64[];
}

export interface TensorShapeDimension {
  dim_value?: Int64 | null;
  dim_param?: string | null;
  denotation?: string | null;
}

export interface TensorShapeProto {
  dim?: TensorShapeDimension[];
}

export interface TypeProto {
  tensor_type?: { elem_type?: number | null; shape?: TensorShapeProto | null } | null;
  sequence_type?: { elem_type?: TypeProto | null } | null;
  map_type?: { key_type?: number | null; value_type?: TypeProto | null } | null;
  optional_type?: { elem_type?: TypeProto | null } | null;
  sparse_tensor_type?: { elem_type?: number | null; shape?: TensorShapeProto | null } | null;
  opaque_type?: { domain?: string | null; name?: string | null } | null;
  denotation?: string | null;
}

export interface ValueInfoProto {
  name?: string | null;
  type?: TypeProto | null;
  doc_string?: string | null;
  metadata_props?: StringStringEntryProto[];
}

export interface AttributeProto {
  name?: string | null;
  ref_attr_name?: string | null;
  doc_string?: string | null;
  type?: number | null;
  f?: number | null;
  i?: Int64 | null;
  s?: Uint8Array | null;
  t?: TensorProto | null;
  g?: GraphProto | null;
  sparse_tensor?: SparseTensorProto | null;
  tp?: TypeProto | null;
  floats?: number[];
  ints?: Int64[];
  strings?: Uint8Array[];
  tensors?: TensorProto[];
  graphs?: GraphProto[];
  sparse_tensors?: SparseTensorProto[];
  type_protos?: TypeProto[];
}

export interface SimpleShardedDimProto {
  dim_value?: Int64 | null;
  dim_param?: string | null;
  num_shards?: Int64 | null;
}

export interface ShardingSpecProto {
  tensor_name?: string | null;
  device?: Int64[];
  index_to_device_group_map?: { key?: Int64 | null; value?: Int64[] }[];
  sharded_dim?: { axis?: Int64 | null; simple_sharding?: SimpleShardedDimProto[] }[];
}

export interface NodeDeviceConfigurationProto {
  configuration_id?: string | null;
  sharding_spec?: ShardingSpecProto[];
  pipeline_stage?: number | null;
}

export interface NodeProto {
  input?: string[];
  output?: string[];
  name?: string | null;
  op_type?: string | null;
  domain?: string | null;
  overload?: string | null;
  attribute?: AttributeProto[];
  doc_string?: string | null;
  metadata_props?: StringStringEntryProto[];
  device_configurations?: NodeDeviceConfigurationProto[];
}

export interface TensorAnnotation {
  tensor_name?: string | null;
  quant_parameter_tensor_names?: StringStringEntryProto[];
}

export interface GraphProto {
  node?: NodeProto[];
  name?: string | null;
  initializer?: TensorProto[];
  sparse_initializer?: SparseTensorProto[];
  doc_string?: string | null;
  input?: ValueInfoProto[];
  output?: ValueInfoProto[];
  value_info?: ValueInfoProto[];
  quantization_annotation?: TensorAnnotation[];
  metadata_props?: StringStringEntryProto[];
}

export interface TrainingInfoProto {
  initialization?: GraphProto | null;
  algorithm?: GraphProto | null;
  initialization_binding?: StringStringEntryProto[];
  update_binding?: StringStringEntryProto[];
}

export interface FunctionProto {
  name?: string | null;
  input?: string[];
  output?: string[];
  attribute?: string[];
  attribute_proto?: AttributeProto[];
  node?: NodeProto[];
  doc_string?: string | null;
  opset_import?: OperatorSetIdProto[];
  domain?: string | null;
  overload?: string | null;
  value_info?: ValueInfoProto[];
  metadata_props?: StringStringEntryProto[];
}

export interface DeviceConfigurationProto {
  name?: string | null;
  num_devices?: number | null;
  device?: string[];
}

export interface ModelProto {
  ir_version?: Int64 | null;
  opset_import?: OperatorSetIdProto[];
  producer_name?: string | null;
  producer_version?: string | null;
  domain?: string | null;
  model_version?: Int64 | null;
  doc_string?: string | null;
  graph?: GraphProto | null;
  metadata_props?: StringStringEntryProto[];
  training_info?: TrainingInfoProto[];
  functions?: FunctionProto[];
  configuration?: DeviceConfigurationProto[];
}

/** A decoded model: like {@link ModelProto} but the graph is known to be present. */
export interface DecodedModel extends ModelProto {
  graph: GraphProto;
}
