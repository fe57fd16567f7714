using Lowbit.Quantization.Configs;

namespace Lowbit.Tests.Quantization.Configs;

public class QuantConfigsTests
{
    [Theory]
    [InlineData("int8wo")]
    [InlineData("int4wo-32")]
    [InlineData("int4wo-64")]
    [InlineData("int4wo-128")]
    [InlineData("int4wo-256")]
    [InlineData("int4wo-a8-64")]
    [InlineData("fp8wo")]
    [InlineData("nf4")]
    [InlineData("nf4-32")]
    [InlineData("nf4-dq")]
    [InlineData("nf4-dq-128")]
    [InlineData("int8dq")]
    [InlineData("fp6")]
    [InlineData("8da4w-32")]
    [InlineData("fp8dq-tensor")]
    [InlineData("fp8dq-row")]
    [InlineData("8da4w-256")]
    [InlineData("uintx-1-32")]
    [InlineData("uintx-7-256")]
    public void Parse_round_trips_every_short_name(string name) => Assert.Equal(name, QuantConfigs.Parse(name).ShortName);

    [Fact]
    public void Every_listed_name_parses_to_itself()
    {
        foreach (string name in QuantConfigs.Names)
            Assert.Equal(name, QuantConfigs.Parse(name).ShortName);
    }

    [Fact]
    public void Parse_lists_the_valid_names_for_an_unknown_one()
    {
        var e = Assert.Throws<ArgumentException>(() => QuantConfigs.Parse("int4wo-48"));
        Assert.Contains("int4wo-48", e.Message);
        foreach (string name in QuantConfigs.Names)
            Assert.Contains(name, e.Message);
    }

    [Fact]
    public void Int4_config_validates_its_group_size_in_the_constructor()
    {
        Assert.Equal(128, new Int4WeightOnlyConfig().GroupSize);
        Assert.Equal(new Int4WeightOnlyConfig(64), QuantConfigs.Parse("int4wo-64"));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Int4WeightOnlyConfig(48));
        Assert.Equal(new Int4WeightInt8ActivationConfig(64), QuantConfigs.Parse("int4wo-a8-64"));
        Assert.Throws<ArgumentOutOfRangeException>(() => new Int4WeightInt8ActivationConfig(48));
    }

    [Fact]
    public void Nf4_config_validates_its_block_size_in_the_constructor()
    {
        Assert.Equal(64, new NF4WeightOnlyConfig().BlockSize);
        Assert.Equal("nf4", new NF4WeightOnlyConfig().ShortName);
        Assert.Equal("nf4-128", new NF4WeightOnlyConfig(128).ShortName);
        Assert.Throws<ArgumentOutOfRangeException>(() => new NF4WeightOnlyConfig(48));
        Assert.Throws<ArgumentOutOfRangeException>(() => new NF4WeightOnlyConfig(48, DoubleQuantize: true));
    }

    [Fact]
    public void Nf4_double_quantization_validates_its_scaler_block_size()
    {
        Assert.Equal(new NF4WeightOnlyConfig(64, DoubleQuantize: true, ScalerBlockSize: 256), QuantConfigs.Parse("nf4-dq"));
        Assert.Equal(new NF4WeightOnlyConfig(32, DoubleQuantize: true), QuantConfigs.Parse("nf4-dq-32"));
        Assert.Equal("nf4-dq-32-s8", new NF4WeightOnlyConfig(32, DoubleQuantize: true, ScalerBlockSize: 8).ShortName);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => new NF4WeightOnlyConfig(DoubleQuantize: true, ScalerBlockSize: 0));
        Assert.Contains("scaler block size", e.Message);
        Assert.Throws<ArgumentOutOfRangeException>(() => new NF4WeightOnlyConfig(ScalerBlockSize: -256));
    }

    [Fact]
    public void Uintx_config_validates_bits_and_group_size_in_the_constructor()
    {
        Assert.Equal(new UIntXWeightOnlyConfig(3, 64), QuantConfigs.Parse("uintx-3-64"));
        Assert.Equal(64, new UIntXWeightOnlyConfig(2).GroupSize);
        Assert.Throws<ArgumentOutOfRangeException>(() => new UIntXWeightOnlyConfig(0));
        Assert.Throws<ArgumentOutOfRangeException>(() => new UIntXWeightOnlyConfig(8));
        Assert.Throws<ArgumentOutOfRangeException>(() => new UIntXWeightOnlyConfig(4, 48));
        Assert.Throws<ArgumentException>(() => QuantConfigs.Parse("uintx-8-64"));
    }

    [Fact]
    public void Fpx_config_accepts_only_e3m2()
    {
        Assert.Equal(new FpxWeightOnlyConfig(3, 2), QuantConfigs.Parse("fp6"));
        Assert.Throws<ArgumentOutOfRangeException>(() => new FpxWeightOnlyConfig(2, 3));
    }
}
