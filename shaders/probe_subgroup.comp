#version 450
// Context-creation probe: does a workgroup of LANES invocations run as one full subgroup whose
// arithmetic and broadcast are right? decode_split.comp relies on exactly that. Lane i writes what
// it saw; the host compares against the expected values and records bug flags.
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_ballot : require

layout(local_size_x_id = 0) in;

layout(binding = 0, std430) writeonly buffer Result { uvec4 result[]; };

void main() {
  const uint lane = gl_LocalInvocationID.x;
  const uint n = gl_WorkGroupSize.x;
  // x: invocations in my subgroup, y: subgroups, z: max lane id, w: broadcast from the last lane
  result[lane] = uvec4(subgroupAdd(1u), gl_NumSubgroups, subgroupMax(lane),
                       subgroupBroadcast(lane * 3u + 1u, n - 1u));
}
