using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// Rotary embedding in place, Hugging Face's rotate-half convention (as Backends/Cpu/Rope.cs): for row r
/// (position p = start + r), head h, i &lt; D/2, with c = cos[p, i], s = sin[p, i]:
/// x[i] ← x[i]·c − x[i+D/2]·s, x[i+D/2] ← x[i+D/2]·c + x[i]·s. One thread a pair.
/// </summary>
public sealed class Rope
{
    private readonly Action<AcceleratorStream, Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, ArrayView<int>, StepPosition> _kernel;

    public Rope(Accelerator accelerator) =>
        _kernel = accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, ArrayView<int>, StepPosition>(Kernel);

    /// <param name="x">[rows, heads·D].</param>
    /// <param name="cos">[maxPos, D/2]; so is sin.</param>
    /// <param name="inputs">The step's [token, position] (read only when <paramref name="start"/> says so).</param>
    public void Launch(AcceleratorStream stream, ArrayView<float> x, ArrayView<float> cos, ArrayView<float> sin, int rows, int heads, int headDim,
        ArrayView<int> inputs, StepPosition start) =>
        _kernel(stream, rows * heads * (headDim / 2), x, cos, sin, heads, headDim, inputs, start);

    private static void Kernel(Index1D index, ArrayView<float> x, ArrayView<float> cos, ArrayView<float> sin, int heads, int headDim,
        ArrayView<int> inputs, StepPosition start)
    {
        int half = headDim / 2;
        int i = index % half;
        int t = index / half;
        int r = t / heads, h = t - r * heads;
        long b = (long)r * heads * headDim + h * headDim;
        long table = (long)(start.Resolve(inputs) + r) * half + i;
        float c = cos[table], s = sin[table];
        float x0 = x[b + i], x1 = x[b + i + half];
        x[b + i] = x0 * c - x1 * s;
        x[b + i + half] = x1 * c + x0 * s;
    }
}
