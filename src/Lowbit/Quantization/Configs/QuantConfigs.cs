namespace Lowbit.Quantization.Configs;

/// <summary>The configs by short name, for the CLI's <c>--quant NAME</c>.</summary>
public static class QuantConfigs
{
    /// <summary>Every name <see cref="Parse"/> accepts.</summary>
    public static IReadOnlyList<string> Names { get; } =
    [
        "int8wo", "int4wo-32", "int4wo-64", "int4wo-128", "int4wo-256", "int4wo-a8-32", "int4wo-a8-64", "int4wo-a8-128", "int4wo-a8-256", "fp8wo", "nf4", "nf4-32", "nf4-128", "nf4-256", "nf4-dq", "nf4-dq-32", "nf4-dq-128", "nf4-dq-256", "int8dq", "fp6", "8da4w-32", "8da4w-64", "8da4w-128", "8da4w-256", "fp8dq-tensor", "fp8dq-row",
        .. from bits in Enumerable.Range(1, 7) from g in new[] { 32, 64, 128, 256 } select $"uintx-{bits}-{g}",
    ];

    /// <exception cref="ArgumentException">The name is not one of <see cref="Names"/>; the message lists them.</exception>
    public static IQuantConfig Parse(string shortName) => shortName switch
    {
        "int8wo" => new Int8WeightOnlyConfig(),
        "int4wo-32" => new Int4WeightOnlyConfig(32),
        "int4wo-64" => new Int4WeightOnlyConfig(64),
        "int4wo-128" => new Int4WeightOnlyConfig(128),
        "int4wo-256" => new Int4WeightOnlyConfig(256),
        "int4wo-a8-32" => new Int4WeightInt8ActivationConfig(32),
        "int4wo-a8-64" => new Int4WeightInt8ActivationConfig(64),
        "int4wo-a8-128" => new Int4WeightInt8ActivationConfig(128),
        "int4wo-a8-256" => new Int4WeightInt8ActivationConfig(256),
        "fp8wo" => new Float8WeightOnlyConfig(),
        "nf4" => new NF4WeightOnlyConfig(),
        "nf4-32" => new NF4WeightOnlyConfig(32),
        "nf4-128" => new NF4WeightOnlyConfig(128),
        "nf4-256" => new NF4WeightOnlyConfig(256),
        "nf4-dq" => new NF4WeightOnlyConfig(DoubleQuantize: true),
        "nf4-dq-32" => new NF4WeightOnlyConfig(32, DoubleQuantize: true),
        "nf4-dq-128" => new NF4WeightOnlyConfig(128, DoubleQuantize: true),
        "nf4-dq-256" => new NF4WeightOnlyConfig(256, DoubleQuantize: true),
        "int8dq" => new Int8DynamicActivationInt8WeightConfig(),
        "fp6" => new FpxWeightOnlyConfig(3, 2),
        "fp8dq-tensor" => new Float8DynamicActivationFloat8WeightConfig(Formats.Float8Granularity.PerTensor),
        "fp8dq-row" => new Float8DynamicActivationFloat8WeightConfig(Formats.Float8Granularity.PerRow),
        "8da4w-32" => new Int8DynamicActivationInt4WeightConfig(32),
        "8da4w-64" => new Int8DynamicActivationInt4WeightConfig(64),
        "8da4w-128" => new Int8DynamicActivationInt4WeightConfig(128),
        "8da4w-256" => new Int8DynamicActivationInt4WeightConfig(256),
        _ when Names.Contains(shortName) && shortName.StartsWith("uintx-", StringComparison.Ordinal) =>
            new UIntXWeightOnlyConfig(shortName[6] - '0', int.Parse(shortName.AsSpan(8))),
        _ => throw new ArgumentException($"Unknown quantization \"{shortName}\"; valid names: {string.Join(", ", Names)}."),
    };
}
