using ILGPU;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// Group-strided loops over a row (thread t takes t, t + step, ...) with four loads issued together: a loop of one
/// load a pass waits out a memory latency each pass, so a single group scanning 128k logits, or 14k activations,
/// was a serial chain of hundreds of them.
/// </summary>
public static class Strided
{
    /// <summary>Elements at, at + step, at + 2·step, at + 3·step (all in range), loaded together.</summary>
    public static Float4 Four(ArrayView<float> x, long at, int step) =>
        new() { X = x[at], Y = x[at + step], Z = x[at + (2 * step)], W = x[at + (3 * step)] };
}
