using Lowbit.Quantization.Configs;
using Lowbit.Quantization.Formats;

namespace Lowbit.Quantization;

/// <summary>The outcome for one layer: the new weight, or why the layer keeps its dense weight.</summary>
public readonly record struct LayerQuantization(IWeight? Weight, string? SkipReason)
{
    public static LayerQuantization Done(IWeight weight) => new(weight, null);

    public static LayerQuantization Skip(string reason) => new(null, reason);
}

/// <summary>
/// The registration table (config type → handler), in one place: each handler turns one dense weight into its
/// format, or says why it cannot. Read by <see cref="Quantizer"/>; a config type missing here fails at once,
/// naming the config.
/// </summary>
internal static class QuantHandlers
{
    public delegate LayerQuantization Handler(IQuantConfig config, DenseWeight weight);

    private static readonly Dictionary<Type, Handler> s_handlers = new()
    {
        [typeof(Int8WeightOnlyConfig)] = static (_, w) => LayerQuantization.Done(Int8PerRowWeight.Quantize(w.Tensor)),
        [typeof(Int4WeightOnlyConfig)] = static (config, w) =>
        {
            int g = ((Int4WeightOnlyConfig)config).GroupSize;
            return Int4GroupedWeight.Incompatibility(w.InFeatures, g) is { } reason
                ? LayerQuantization.Skip(reason)
                : LayerQuantization.Done(Int4GroupedWeight.Quantize(w.Tensor, g));
        },
        [typeof(Int4WeightInt8ActivationConfig)] = static (config, w) =>
        {
            int g = ((Int4WeightInt8ActivationConfig)config).GroupSize;
            return Int4GroupedWeight.Incompatibility(w.InFeatures, g) is { } reason
                ? LayerQuantization.Skip(reason)
                : LayerQuantization.Done(Int4GroupedA8Weight.Quantize(w.Tensor, g));
        },
        [typeof(Float8WeightOnlyConfig)] = static (_, w) => LayerQuantization.Done(Float8PerRowWeight.Quantize(w.Tensor)),
        [typeof(Int8DynamicActivationInt8WeightConfig)] = static (_, w) => LayerQuantization.Done(Int8DynamicWeight.Quantize(w.Tensor)),
        [typeof(UIntXWeightOnlyConfig)] = static (config, w) =>
        {
            var c = (UIntXWeightOnlyConfig)config;
            return UIntXGroupedWeight.Incompatibility(w.InFeatures, c.Bits, c.GroupSize) is { } reason
                ? LayerQuantization.Skip(reason)
                : LayerQuantization.Done(UIntXGroupedWeight.Quantize(w.Tensor, c.Bits, c.GroupSize));
        },
        [typeof(FpxWeightOnlyConfig)] = static (_, w) => Fp6PerRowWeight.Incompatibility(w.InFeatures) is { } reason
            ? LayerQuantization.Skip(reason)
            : LayerQuantization.Done(Fp6PerRowWeight.Quantize(w.Tensor)),
        [typeof(Int8DynamicActivationInt4WeightConfig)] = static (config, w) =>
        {
            int g = ((Int8DynamicActivationInt4WeightConfig)config).GroupSize;
            return Int8DynamicInt4Weight.Incompatibility(w.InFeatures, g) is { } reason
                ? LayerQuantization.Skip(reason)
                : LayerQuantization.Done(Int8DynamicInt4Weight.Quantize(w.Tensor, g));
        },
        [typeof(Float8DynamicActivationFloat8WeightConfig)] = static (config, w) =>
            LayerQuantization.Done(Float8DynamicWeight.Quantize(w.Tensor, ((Float8DynamicActivationFloat8WeightConfig)config).Granularity)),
        [typeof(NF4WeightOnlyConfig)] = static (config, w) =>
        {
            var c = (NF4WeightOnlyConfig)config;
            return Nf4BlockwiseWeight.Incompatibility(w.InFeatures, c.BlockSize) is { } reason ? LayerQuantization.Skip(reason)
                : c.DoubleQuantize ? LayerQuantization.Done(Nf4DoubleQuantWeight.Quantize(w.Tensor, c.BlockSize, c.ScalerBlockSize))
                : LayerQuantization.Done(Nf4BlockwiseWeight.Quantize(w.Tensor, c.BlockSize));
        },
    };

    public static Handler For(IQuantConfig config) =>
        s_handlers.TryGetValue(config.GetType(), out var handler)
            ? handler
            : throw new NotSupportedException($"No quantization handler is registered for {config.GetType().Name} (\"{config.ShortName}\").");
}
