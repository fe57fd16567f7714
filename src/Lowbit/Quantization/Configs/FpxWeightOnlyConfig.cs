namespace Lowbit.Quantization.Configs;

/// <summary>FPx weight-only with one scale per row (torchao's FpxWeightOnlyConfig(ebits, mbits)). Only FP6 E3M2
/// (3, 2), the FP6-LLM format, has a layout and kernel here: the <see cref="Formats.Fp6PerRowWeight"/> format.
/// A layer whose K is not a multiple of 4 is left unquantized.</summary>
public sealed record FpxWeightOnlyConfig(int ExponentBits = 3, int MantissaBits = 2) : IQuantConfig
{
    public int ExponentBits { get; } = ExponentBits == 3 ? ExponentBits
        : throw new ArgumentOutOfRangeException(nameof(ExponentBits), ExponentBits, "fpx: only E3M2 (FP6) is implemented");

    public int MantissaBits { get; } = MantissaBits == 2 ? MantissaBits
        : throw new ArgumentOutOfRangeException(nameof(MantissaBits), MantissaBits, "fpx: only E3M2 (FP6) is implemented");

    public string ShortName => Formats.Fp6PerRowWeight.Name;
}
