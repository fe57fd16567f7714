using ILGPU;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// ILGPU's O2 pipeline marks the branches its uniformity analysis proves warp-uniform as <c>bra.uni</c>, and that
/// analysis can take a value that differs between threads for uniform: seen on a loop's running sum of loads at
/// thread-dependent addresses (<see cref="Sampling"/>'s draw; read the PTX: <c>@%p bra.uni</c> on it). A divergent
/// <c>bra.uni</c> is undefined in PTX; on the H100 it ran correctly but cost ~85 us a call.
/// </summary>
public static class Uniformity
{
    /// <summary><paramref name="value"/> unchanged, through a select on the thread index, which the analysis always
    /// counts as divergent, so branches on it are emitted as ordinary (divergent) branches.</summary>
    public static float Divergent(float value) => Group.IdxX < 0 ? -value : value;
}
