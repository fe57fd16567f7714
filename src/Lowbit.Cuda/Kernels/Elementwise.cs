using ILGPU;
using ILGPU.Runtime;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// The elementwise ops of a block, one thread an element: gate = silu(gate)·up (silu(g) = g / (1 + e^−g)) and
/// x[r, :] += bias, for what the fused GEMVs do not take (prefill, unfused formats, Qwen2's biases).
/// </summary>
public sealed class Elementwise
{
    private readonly Action<AcceleratorStream, Index1D, ArrayView<float>, ArrayView<float>> _siluMul;
    private readonly Action<AcceleratorStream, Index1D, ArrayView<float>, ArrayView<float>, int> _addBias;

    public Elementwise(Accelerator accelerator)
    {
        _siluMul = accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<float>, ArrayView<float>>(SiluMulKernel);
        _addBias = accelerator.LoadAutoGroupedKernel<Index1D, ArrayView<float>, ArrayView<float>, int>(AddBiasKernel);
    }

    public void SiluMul(AcceleratorStream stream, ArrayView<float> gate, ArrayView<float> up) => _siluMul(stream, (int)gate.Length, gate, up);

    /// <param name="x">[rows, columns].</param>
    /// <param name="bias">[columns].</param>
    public void AddBias(AcceleratorStream stream, ArrayView<float> x, ArrayView<float> bias, int columns) => _addBias(stream, (int)x.Length, x, bias, columns);

    private static void SiluMulKernel(Index1D i, ArrayView<float> gate, ArrayView<float> up)
    {
        float g = gate[i];
        gate[i] = g / (1f + FastMath.Exp(-g)) * up[i];
    }

    private static void AddBiasKernel(Index1D i, ArrayView<float> x, ArrayView<float> bias, int columns) => x[i] += bias[i % columns];
}
