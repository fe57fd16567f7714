namespace Lowbit.Quantization.Configs;

/// <summary>A quantization recipe: what <see cref="Quantizer.Quantize"/> turns each dense linear weight into.
/// Implementations are sealed records validated in their constructor; <see cref="QuantHandlers"/> maps each
/// config type to the code that applies it.</summary>
public interface IQuantConfig
{
    /// <summary>torchao-style short name, also the CLI's <c>--quant</c> value ("int8wo", "int4wo-64").</summary>
    string ShortName { get; }
}
