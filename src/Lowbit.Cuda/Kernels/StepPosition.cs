using ILGPU;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// The first position a kernel works at. Eager launches pass it as a number; a recorded decode step (a CUDA
/// graph, whose arguments are baked in) reads it from device memory instead, from the step's inputs
/// [token, position] that the host writes before each replay.
/// </summary>
public struct StepPosition
{
    /// <summary>The position given at launch (0 in a recorded step).</summary>
    public int Start;

    /// <summary>1 when the replayed step's position is added from <c>inputs[1]</c>.</summary>
    public int FromInputs;

    public static StepPosition Eager(int start) => new() { Start = start };

    public static StepPosition Recorded(int start) => new() { Start = start, FromInputs = 1 };

    /// <summary>The position, read in a kernel.</summary>
    public readonly int Resolve(ArrayView<int> inputs) => FromInputs != 0 ? Start + inputs[1] : Start;
}
