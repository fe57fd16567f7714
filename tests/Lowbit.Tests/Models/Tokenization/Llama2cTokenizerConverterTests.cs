using Lowbit.Models.Tokenization;

namespace Lowbit.Tests.Models.Tokenization;

public class Llama2cTokenizerConverterTests
{
    [Fact]
    public void Tok512_OnceUponATime_GivesRunCIds()
    {
        // The prompt ids run.c fed stories260K (tests/fixtures/reference/stories260K-greedy.json).
        Assert.Equal([1, 403, 407, 261, 378], TokenizerFixtures.Tok512.Encode("Once upon a time", addBos: true));
    }

    [Fact]
    public void Llama2Bin_ConvertsBackToTheOriginalModelsPieces()
    {
        var original = SentencePieceModel.Parse(File.ReadAllBytes(TokenizerFixtures.Llama2Model));
        var converted = SentencePieceModel.Parse(Llama2cTokenizerConverter.ToSentencePieceModel(TokenizerFixtures.Llama2Bin, 32000));

        Assert.Equal(original.Pieces.Count, converted.Pieces.Count);
        for (int i = 0; i < original.Pieces.Count; i++)
            Assert.Equal(original.Pieces[i], converted.Pieces[i]);
        Assert.Equal(
            (original.ModelType, original.ByteFallback, original.UnkId, original.BosId, original.EosId, original.PadId),
            (converted.ModelType, converted.ByteFallback, converted.UnkId, converted.BosId, converted.EosId, converted.PadId));
        Assert.Equal(
            (original.NormalizerName, original.AddDummyPrefix, original.RemoveExtraWhitespaces, original.EscapeWhitespaces),
            (converted.NormalizerName, converted.AddDummyPrefix, converted.RemoveExtraWhitespaces, converted.EscapeWhitespaces));
    }

    [Fact]
    public void Llama2Bin_EncodesLikeTheOriginalModel()
    {
        TextTokenizer converted = TextTokenizer.LoadLlama2c(TokenizerFixtures.Llama2Bin, 32000);
        foreach (string text in TokenizerFixtures.HardCases.Concat(TokenizerFixtures.TinyStoriesLines(400)))
            Assert.Equal(TokenizerFixtures.Llama2.Encode(text, addBos: true), converted.Encode(text, addBos: true));
    }

    [Fact]
    public void Tok512_EncodesLikeRunC()
    {
        var runC = new RunCEncoder(TokenizerFixtures.Tok512Bin, 512);
        foreach (string text in TokenizerFixtures.HardCases.Concat(TokenizerFixtures.TinyStoriesLines(400)))
            Assert.Equal(runC.Encode(text), TokenizerFixtures.Tok512.Encode(text, addBos: true));
    }

    [Fact]
    public void Tok512_PiecesUseTheSpaceSymbolAndKeepScores()
    {
        var model = SentencePieceModel.Parse(Llama2cTokenizerConverter.ToSentencePieceModel(TokenizerFixtures.Tok512Bin, 512));
        Assert.Equal(512, model.Pieces.Count);
        Assert.Equal(new SentencePiece("<unk>", 0, SentencePieceType.Unknown), model.Pieces[0]);
        Assert.Equal(new SentencePiece("<s>", 0, SentencePieceType.Control), model.Pieces[1]);
        Assert.Equal(new SentencePiece("</s>", 0, SentencePieceType.Control), model.Pieces[2]);
        Assert.Equal(new SentencePiece("<0x0A>", 0, SentencePieceType.Byte), model.Pieces[3 + 10]);
        Assert.Equal(new SentencePiece("\u2581t", -0f, SentencePieceType.Normal), model.Pieces[259]);
        Assert.Equal(new SentencePiece("he", -1f, SentencePieceType.Normal), model.Pieces[260]);
        Assert.DoesNotContain(model.Pieces, p => p.Piece.Contains(' '));
    }

    [Theory]
    [InlineData(511)]
    [InlineData(513)]
    public void WrongVocabSize_IsInvalidData(int vocabSize)
    {
        var e = Assert.Throws<InvalidDataException>(() => Llama2cTokenizerConverter.ToSentencePieceModel(TokenizerFixtures.Tok512Bin, vocabSize));
        Assert.Contains(TokenizerFixtures.Tok512Bin, e.Message);
        Assert.Contains(vocabSize.ToString(System.Globalization.CultureInfo.InvariantCulture), e.Message);
    }

    [Fact]
    public void TruncatedFile_IsInvalidData()
    {
        byte[] data = File.ReadAllBytes(TokenizerFixtures.Tok512Bin);
        string dir = TokenizerFixtures.ModelDir(("cut.bin", data[..(data.Length - 3)]));
        var e = Assert.Throws<InvalidDataException>(() => Llama2cTokenizerConverter.ToSentencePieceModel(Path.Combine(dir, "cut.bin"), 512));
        Assert.Contains("cut.bin", e.Message);
        Assert.Contains("piece 511", e.Message);
    }

    [Fact]
    public void SentencePieceModel_SerializeThenParse_RoundTrips()
    {
        var model = new SentencePieceModel
        {
            Pieces = [new("<unk>", 0, SentencePieceType.Unknown), new("\u2581a", -1.5f, SentencePieceType.Normal), new("<0x41>", 0, SentencePieceType.Byte)],
            ModelType = SentencePieceModel.ModelTypeBpe,
            ByteFallback = true,
            PadId = -1,
            NormalizerName = "identity",
            RemoveExtraWhitespaces = false,
        };
        var parsed = SentencePieceModel.Parse(model.Serialize());
        Assert.Equal(model.Pieces, parsed.Pieces);
        Assert.Equal((2, true, -1, "identity", false), (parsed.ModelType, parsed.ByteFallback, parsed.PadId, parsed.NormalizerName, parsed.RemoveExtraWhitespaces));
    }
}
