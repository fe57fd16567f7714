using ILGPU;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// ILGPU's O2 pipeline marks the branches its uniformity analysis proves warp-uniform as <c>bra.uni</c>, and that
/// analysis can take a value that differs between threads for uniform: seen on a loop's running sum of loads at
/// thread-dependent addresses (<see cref="Sampling"/>'s draw) and on the index of implicitly grouped kernels
/// (<see cref="Rope"/>'s q/k/v sections, <see cref="Embedding"/>'s bf16 halves; read the PTX: <c>@%p bra.uni</c> on
/// them). A divergent <c>bra.uni</c> is undefined in PTX; on the H100 the draw's ran correctly but cost ~85 us a call.
/// </summary>
public static class Uniformity
{
    /// <summary><paramref name="value"/> unchanged, through a select on the thread index, which the analysis always
    /// counts as divergent, so branches on it are emitted as ordinary (divergent) branches.</summary>
    public static float Divergent(float value) => Group.IdxX < 0 ? -value : value;

    /// <inheritdoc cref="Divergent(float)"/>
    public static int Divergent(int value) => Group.IdxX < 0 ? -value : value;
}
