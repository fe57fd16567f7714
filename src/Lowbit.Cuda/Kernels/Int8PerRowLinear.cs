using ILGPU;

namespace Lowbit.Cuda.Kernels;

/// <summary>
/// int8wo on the device (<see cref="RowScaledGemv{TValues}"/>, <see cref="RowScaledTile{TValues}"/>): the host's
/// q in [−128, 127] is stored offset by 128 (byte = q + 128, so the padding byte 128 is q = 0): every byte is
/// an unsigned integer u, and <see cref="Magic"/> turns it into q with a shift, a mask-or and one FADD
/// (no int-to-float conversion, a quarter-rate instruction on the H100).
/// </summary>
public readonly struct Int8PerRowValues : IByteValues
{
    public bool Codes => false;

    public float Value(uint word, int j) => Magic.Float((word >> (8 * j)) & 0xFFu) - (Magic.Value + 128f);
}

/// <summary>The magic-number trick (ILGPU-NOTES.md): for an integer u below 2^23 the float with bits
/// 0x4B000000 | u is 2^23 + u exactly, so u − z costs one integer OR and one FADD of the constant
/// 2^23 + z (callers write <c>Magic.Float(u) − (Magic.Value + z)</c>, one constant, exact for z &lt; 2^23).</summary>
public static class Magic
{
    public const uint Bits = 0x4B000000;
    public const float Value = 8388608f;

    /// <summary>2^23 + <paramref name="u"/> (u &lt; 2^23).</summary>
    public static float Float(uint u) => Interop.IntAsFloat(Bits | u);
}
