using ILGPU;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// fp8wo on the device (<see cref="RowScaledGemv{TValues}"/>, <see cref="RowScaledTile{TValues}"/>): the OCP E4M3
/// codes as the host stores them (sign bit 7, exponent bits 6..3 with bias 7, mantissa bits 2..0), rows padded
/// with 0. Decoding by integer ops, as the CPU's E4M3Map: the byte moved to the word's top (sign at bit 31) and
/// shifted right 4 arithmetically puts exponent and mantissa at f32 bits 26..20; the mask 0x87F00000 keeps
/// them and the sign, which reads as the same value with bias 127 instead of 7, i.e. ×2^−120 (E4M3 subnormals
/// land on f32 subnormals); one exact FMUL by 2^120 restores it. Exact for every code but the NaNs 0x7F/0xFF
/// (±480; the quantizer never writes them). Per weight: two shifts and a mask (or a byte permute), FMUL, FMA.
/// </summary>
public readonly struct Float8PerRowValues : IByteValues
{
    private const float Rebias = 1.329228e36f; // 2^120

    public bool Codes => false;

    public float Value(uint word, int j) =>
        Interop.IntAsFloat((uint)((int)(word << (24 - 8 * j)) >> 4) & 0x87F00000u) * Rebias;
}
